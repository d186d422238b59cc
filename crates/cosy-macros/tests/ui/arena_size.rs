cosy::compound! {
    fn f() -> Out {
        let mut huge = [0u8; 1 << 31];
        let r = getpid()?;
        Out { r }
    }
}

fn main() {}

cosy::compound! {
    fn f() -> Out {
        let mut buf = [1u8; 16];
        let r = 0;
        Out { r }
    }
}

fn main() {}

cosy::compound! {
    fn f() -> Out {
        let r = getpid()?;
    }
}

fn main() {}

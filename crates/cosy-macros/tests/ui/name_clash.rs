cosy::compound! {
    fn f() -> Out {
        let read = getpid()?;
        Out { read }
    }
}

fn main() {}

cosy::compound! {
    fn f() -> Out {
        let r = unsafe { getpid()? };
        Out { r }
    }
}

fn main() {}

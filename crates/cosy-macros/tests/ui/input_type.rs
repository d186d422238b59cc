cosy::compound! {
    fn f(names: Vec<String>) -> Out {
        let r = getpid()?;
        Out { r }
    }
}

fn main() {}

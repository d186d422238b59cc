cosy::compound! {
    fn f(count: i64) -> Out {
        if count == 0 {
            return;
        }
        let r = getpid()?;
        Out { r }
    }
}

fn main() {}

cosy::compound! {
    fn f() -> Out {
        let limit = 10;
        let clamp = |x| x.min(limit);
        let r = getpid()?;
        Out { r }
    }
}

fn main() {}

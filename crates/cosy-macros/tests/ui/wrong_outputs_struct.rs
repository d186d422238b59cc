cosy::compound! {
    fn f() -> Out {
        let r = 0;
        Other { r }
    }
}

fn main() {}

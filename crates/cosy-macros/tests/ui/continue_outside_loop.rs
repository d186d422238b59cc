cosy::compound! {
    fn f() -> Out {
        let r = 0;
        continue;
        Out { r }
    }
}

fn main() {}

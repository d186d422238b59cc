cosy::compound! {
    fn f() -> Out {
        let total = 0;
        total += size;
        Out { total }
    }
}

fn main() {}

cosy::compound! {
    fn f() -> Out {
        let (a, b) = (1, 2);
        Out { a }
    }
}

fn main() {}

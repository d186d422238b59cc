cosy::compound! {
    fn f() -> Out {
        let pair = (1, 2);
        Out { pair }
    }
}

fn main() {}

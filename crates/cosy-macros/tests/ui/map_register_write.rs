cosy::compound! {
    fn f() -> Out {
        let mut last = 0;
        for i in 0..10 {
            last = i;
        }
        Out { last }
    }
}

fn main() {}

cosy::compound! {
    fn f(count: i64) -> Out {
        let mut i = 0;
        while i < count {
            i += 1;
        }
        Out { i }
    }
}

fn main() {}

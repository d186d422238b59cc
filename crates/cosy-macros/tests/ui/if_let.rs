cosy::compound! {
    fn f(n: i64) -> Out {
        let mut r = 0;
        if let 3 = n {
            r = 1;
        }
        Out { r }
    }
}

fn main() {}

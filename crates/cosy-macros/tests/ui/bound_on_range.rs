cosy::compound! {
    fn f() -> Out {
        let mut total = 0;
        #[bound(10)]
        for i in 0..10 {
            total += i;
        }
        Out { total }
    }
}

fn main() {}

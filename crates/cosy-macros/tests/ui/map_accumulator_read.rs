cosy::compound! {
    fn f() -> Out {
        let mut total = 0;
        let mut seen = 0;
        for i in 0..10 {
            total += i;
            seen += total;
        }
        Out { total, seen }
    }
}

fn main() {}

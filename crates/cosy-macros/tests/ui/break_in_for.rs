cosy::compound! {
    fn f() -> Out {
        let mut total = 0;
        for i in 0..10 {
            if i == 5 {
                break;
            }
            total += i;
        }
        Out { total }
    }
}

fn main() {}

cosy::compound! {
    fn f() -> Out {
        let mut total = 0;
        for off in (0..4096).step_by(0) {
            total += off;
        }
        Out { total }
    }
}

fn main() {}

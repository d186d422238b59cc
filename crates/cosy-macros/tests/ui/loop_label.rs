cosy::compound! {
    fn f() -> Out {
        let mut r = 0;
        #[bound(10)]
        'outer: loop {
            r += 1;
            break 'outer;
        }
        Out { r }
    }
}

fn main() {}

cosy::compound! {
    fn f() -> Out {
        let mut r = 0;
        #[bound(0)]
        loop {
            r += 1;
            if r > 3 {
                break;
            }
        }
        Out { r }
    }
}

fn main() {}

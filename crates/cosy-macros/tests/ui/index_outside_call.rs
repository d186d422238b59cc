cosy::compound! {
    fn f() -> Out {
        let mut buf = [0u8; 16];
        let b = buf[3];
        Out { b }
    }
}

fn main() {}

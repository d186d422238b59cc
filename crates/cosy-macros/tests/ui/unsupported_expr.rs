cosy::compound! {
    fn f(name: &Path) -> Out {
        let mut buf = [0u8; 4096];
        let n = buf.len();
        Out { n }
    }
}

fn main() {}

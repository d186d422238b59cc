cosy::compound! {
    fn f(name: &Path) -> Out {
        let mut buf = [0u8; 16];
        let n = read(name, &mut buf)?;
        Out { n }
    }
}

fn main() {}

cosy::compound! {
    fn f(name: &Path) -> Out {
        openat(cwd, name, O_RDONLY, 0)?;
        let r = 0;
        Out { r }
    }
}

fn main() {}

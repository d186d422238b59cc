cosy::compound! {
    fn f(name: &Path) -> Out {
        let fd = openat(cwd, name, O_RDONLY, 0)?;
        let n = read(fd)?;
        close(fd)?;
        Out { n }
    }
}

fn main() {}

cosy::compound! {
    fn f(name: &Path) -> Out {
        let mut buf = [0u8; 4096];
        let fd = openat(cwd, name, O_RDONLY, 0)?;
        let n = read(fd, &mut buf)?;
        let c = find(&buf[..n]);
        close(fd)?;
        Out { c }
    }
}

fn main() {}

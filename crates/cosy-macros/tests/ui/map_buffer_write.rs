cosy::compound! {
    fn f(dir: &Path) -> Out {
        let mut buf = [0u8; 4096];
        let d = openat(cwd, dir, O_RDONLY | O_DIRECTORY, 0)?;
        let mut total = 0;
        for e in dirents(d) {
            let f = openat(d, e, O_RDONLY, 0)?;
            let n = read(f, &mut buf)?;
            close(f)?;
            total += n;
        }
        close(d)?;
        Out { total }
    }
}

fn main() {}

cosy::compound! {
    fn f(dir: &Path) -> Out {
        let d = openat(cwd, dir, O_RDONLY | O_DIRECTORY, 0)?;
        let mut n = 0;
        for p in ["a", "b"] {
            close(d)?;
            n += 1;
        }
        Out { n }
    }
}

fn main() {}

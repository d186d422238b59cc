cosy::compound! {
    fn f(name: &Path) -> Out {
        let r = match openat(cwd, name, O_RDONLY, 0) {
            Ok(fd) => 1,
            Err(errno) => 0,
        };
        Out { r }
    }
}

fn main() {}

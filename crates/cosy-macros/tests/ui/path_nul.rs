cosy::compound! {
    fn f() -> Out {
        let fd = openat(cwd, "a\0b", O_RDONLY, 0)?;
        close(fd)?;
        let r = 0;
        Out { r }
    }
}

fn main() {}

cosy::compound! {
    fn f(name: &Path) -> Out {
        let mut st = [0u8; 64];
        let r = statx(cwd, name, 0, STATX_SIZE, &mut st)?;
        Out { r }
    }
}

fn main() {}

cosy::compound! {
    fn f() -> Out {
        let r#type = 0;
        Out { r#type }
    }
}

fn main() {}

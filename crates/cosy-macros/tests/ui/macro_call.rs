cosy::compound! {
    fn f() -> Out {
        let r = 0;
        println!("{}", r);
        Out { r }
    }
}

fn main() {}

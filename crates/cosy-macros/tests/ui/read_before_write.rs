cosy::compound! {
    fn f(count: i64) -> Out {
        let total;
        if count > 3 {
            total = 1;
        }
        let twice = total * 2;
        Out { twice }
    }
}

fn main() {}

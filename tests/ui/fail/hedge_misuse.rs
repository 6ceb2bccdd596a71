use reliability::hedge;

#[hedge(after = "p40")]
async fn percentile_too_low() -> Result<(), reliability::Error> {
    Ok(())
}

#[hedge(after = "100ms", max = 9)]
async fn too_many() -> Result<(), reliability::Error> {
    Ok(())
}

#[hedge(after = "100ms")]
async fn shares_a_mut(out: &mut Vec<u8>) -> Result<(), reliability::Error> {
    out.push(1);
    Ok(())
}

fn main() {}

//! Writes the int8 variant of a speech encoder graph as a bundle ships it (calibrated on
//! synthetic speech), to profile it with `emotion-core`'s `profile_graph` example.
//!
//!   cargo run --release -p host-trainer --example int8_graph -- IN.onnx OUT.onnx

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = &args[..] else {
        anyhow::bail!("usage: int8_graph IN.onnx OUT.onnx");
    };
    let bytes = std::fs::read(input)?;
    let int8 = host_trainer::encoders::cost::int8_variant(&bytes)?;
    std::fs::write(output, int8)?;
    Ok(())
}

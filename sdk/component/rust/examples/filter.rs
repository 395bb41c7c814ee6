//! Filter: keeps the records whose data contains the configuration bytes (all records when the
//! configuration is empty), unchanged, on output 0.
use nodata_component::{component, config, Emitter, Record, Result};

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

fn process(record: &Record, out: &mut Emitter) -> Result<()> {
    if contains(record.data, config()) {
        out.forward(0)?;
    }
    Ok(())
}

component!(fn process);

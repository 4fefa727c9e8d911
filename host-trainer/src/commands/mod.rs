//! The command-line workflows: each `host-trainer` command as a short function over the
//! stages, writing into one output folder layout.

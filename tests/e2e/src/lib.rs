//! End-to-end tests live in `tests/`: the real function code against the sandbox and moto.

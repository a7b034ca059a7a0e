//! Coroutines cooperating: `hello_world` awaits `add_42(23)`.
//!
//! ```python
//! async def add_42(number):
//!     print("Adding 42")
//!     return 42 + number
//!
//! async def hello_world():
//!     print("hello world!")
//!     result = await add_42(23)
//!     return result
//! ```

use roof::EventLoop;

async fn add_42(number: i64) -> i64 {
    roof::println!("Adding 42");
    42 + number
}

async fn hello_world() -> i64 {
    roof::println!("hello world!");
    add_42(23).await
}

pub fn run(event_loop: &EventLoop) -> Result<(), String> {
    let result = event_loop
        .run_until_complete(hello_world())
        .map_err(super::failed)?;
    roof::println!("{result}");
    if result != 65 {
        return Err(format!("hello_world returned {result}, expected 65"));
    }
    Ok(())
}

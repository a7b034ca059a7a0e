//! The notes' first program: a coroutine that prints and returns 42.
//!
//! ```python
//! async def hello_world():
//!     print("hello world!")
//!     return 42
//!
//! hello_world_coroutine = hello_world()
//! print(hello_world_coroutine)
//! event_loop = asyncio.get_event_loop()
//! try:
//!     print("entering event loop")
//!     result = event_loop.run_until_complete(hello_world_coroutine)
//!     print(result)
//! finally:
//!     event_loop.close()
//! ```

use roof::EventLoop;

async fn hello_world() -> i32 {
    roof::println!("hello world!");
    42
}

/// Python prints the coroutine object with its memory address, which changes from run to
/// run; here the "address" is drawn from the seed, so it changes with the seed and replays.
fn coroutine_repr(seed: u64) -> String {
    let address =
        0x7f00_0000_0000u64 | (seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 24) & 0xff_ffff_fff0;
    format!("<coroutine object hello_world at {address:#x}>")
}

pub fn run(event_loop: &EventLoop) -> Result<(), String> {
    let coroutine = hello_world();
    roof::println!("{}", coroutine_repr(event_loop.seed()));
    roof::println!("entering event loop");
    let result = event_loop
        .run_until_complete(coroutine)
        .map_err(super::failed)?;
    roof::println!("{result}");
    if result != 42 {
        return Err(format!("hello_world returned {result}, expected 42"));
    }
    Ok(())
}

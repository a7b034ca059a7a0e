//! Two coroutines gathered: `hello_world` prints, `hello_python` prints and sleeps 0.1 s.
//!
//! ```python
//! async def hello_world():
//!     print("hello world!")
//!
//! async def hello_python():
//!     print("hello Python!")
//!     await asyncio.sleep(0.1)
//!
//! result = event_loop.run_until_complete(asyncio.gather(hello_world(), hello_python()))
//! print(result)
//! ```
//!
//! Under FIFO `hello_world` starts first, as in CPython; under the random policy some seeds
//! start `hello_python` first. Either way the results come back in argument order.

use std::time::Duration;

use roof::EventLoop;

/// What a coroutine of the program returns, shown the way Python prints it.
#[derive(Debug, PartialEq)]
enum Value {
    None,
}

async fn hello_world() -> Value {
    roof::println!("hello world!");
    Value::None
}

async fn hello_python() -> Value {
    roof::println!("hello Python!");
    roof::sleep(Duration::from_millis(100)).await;
    Value::None
}

pub fn run(event_loop: &EventLoop) -> Result<(), String> {
    let (world, python) = event_loop
        .run_until_complete(roof::gather!(hello_world(), hello_python()))
        .map_err(super::failed)?
        .map_err(|error| error.to_string())?;
    let results = [world, python];
    let shown: Vec<&str> = results.iter().map(|Value::None| "None").collect();
    roof::println!("[{}]", shown.join(", "));
    let elapsed = event_loop.now().elapsed_since_origin();
    if elapsed != Duration::from_millis(100) {
        return Err(format!(
            "gather took {elapsed:?} of virtual time, expected 100ms"
        ));
    }
    Ok(())
}

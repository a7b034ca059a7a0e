//! `roof::fs`: files a host keeps through its crash and restart, and what a crash does to
//! what was not synced, as properties over many seeds.

use std::cell::{Cell, RefCell};
use std::io::ErrorKind;
use std::rc::Rc;
use std::time::Duration;

use roof::fs::{self, File, OpenOptions, SECTOR};
use roof::{Config, EventLoop, TraceMode};

/// Behaviour bodies that use only `roof::fs`, run on the simulated disk (below) and on real
/// files (tests/real_net.rs): what a program sees is the same on both.
pub mod conformance {
    use roof::fs::{self, File, OpenOptions};
    use std::io::{ErrorKind, SeekFrom};

    /// A body: a future the loop runs to the end.
    pub type Body = fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

    /// Every body, by name.
    pub const BODIES: &[(&str, Body)] = &[
        ("reads and writes", || Box::pin(reads_and_writes())),
        ("names", || Box::pin(names())),
        ("errors", || Box::pin(errors())),
    ];

    /// Writes, positional and appended, seeks, lengths, reads back.
    pub async fn reads_and_writes() {
        fs::create_dir_all("/data").await.unwrap();
        let mut file = File::create("/data/log").await.unwrap();
        file.write_all(b"hello world").await.unwrap();
        file.write_at(b"W", 6).await.unwrap();
        file.sync_all().await.unwrap();
        assert_eq!(
            fs::read_to_string("/data/log").await.unwrap(),
            "hello World"
        );
        let mut reader = File::open("/data/log").await.unwrap();
        assert_eq!(reader.seek(SeekFrom::Start(6)).await.unwrap(), 6);
        let mut rest = Vec::new();
        assert_eq!(reader.read_to_end(&mut rest).await.unwrap(), 5);
        assert_eq!(rest, b"World");
        let mut four = [0u8; 4];
        assert_eq!(
            reader.read_at(&mut four, 9).await.unwrap(),
            2,
            "a short read at the end"
        );
        assert_eq!(reader.read(&mut four).await.unwrap(), 0, "at the end");
        let mut log = OpenOptions::new()
            .append(true)
            .open("/data/log")
            .await
            .unwrap();
        log.write_all(b"!").await.unwrap();
        log.sync_data().await.unwrap();
        assert_eq!(fs::metadata("/data/log").await.unwrap().len(), 12);
        file.set_len(14).await.unwrap();
        assert_eq!(fs::read("/data/log").await.unwrap(), b"hello World!\0\0");
        file.set_len(5).await.unwrap();
        assert_eq!(file.metadata().await.unwrap().len(), 5);
        assert_eq!(fs::read("/data/log").await.unwrap(), b"hello");
        let truncated = File::create("/data/log").await.unwrap();
        assert_eq!(
            truncated.metadata().await.unwrap().len(),
            0,
            "create truncates"
        );
    }

    /// Directories, listings, renames and removals.
    pub async fn names() {
        fs::create_dir_all("/n/a/b").await.unwrap();
        fs::create_dir_all("/n/a/b").await.unwrap();
        fs::write("/n/z", b"z").await.unwrap();
        fs::write("/n/a/one", b"1").await.unwrap();
        let listed = fs::read_dir("/n").await.unwrap();
        assert_eq!(listed, [std::path::PathBuf::from("/n/a"), "/n/z".into()]);
        assert!(fs::metadata("/n/a").await.unwrap().is_dir());
        assert!(fs::metadata("/n/z").await.unwrap().is_file());
        fs::rename("/n/z", "/n/a/one").await.unwrap();
        assert_eq!(
            fs::read("/n/a/one").await.unwrap(),
            b"z",
            "a rename replaces"
        );
        assert_eq!(
            fs::metadata("/n/z").await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        fs::sync_dir("/n/a").await.unwrap();
        fs::remove_file("/n/a/one").await.unwrap();
        assert_eq!(
            fs::read_dir("/n/a").await.unwrap(),
            [std::path::PathBuf::from("/n/a/b")]
        );
    }

    /// The errors std gives, with their kinds.
    pub async fn errors() {
        fs::create_dir_all("/e/dir").await.unwrap();
        let kind = |result: std::io::Result<()>| result.unwrap_err().kind();
        assert_eq!(
            kind(File::open("/e/missing").await.map(drop)),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind(File::create("/e/no/f").await.map(drop)),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind(File::create("/e/dir").await.map(drop)),
            ErrorKind::IsADirectory
        );
        assert_eq!(
            kind(fs::remove_file("/e/missing").await),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind(fs::rename("/e/missing", "/e/x").await),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind(fs::read_dir("/e/missing").await.map(drop)),
            ErrorKind::NotFound
        );
        fs::write("/e/f", b"x").await.unwrap();
        let again = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open("/e/f")
            .await;
        assert_eq!(kind(again.map(drop)), ErrorKind::AlreadyExists);
        let mut read_only = File::open("/e/f").await.unwrap();
        assert_eq!(
            kind(read_only.write_all(b"y").await),
            ErrorKind::PermissionDenied
        );
        assert_eq!(
            kind(fs::read("/..").await.map(drop)),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(File::create("/e/f/g").await.map(drop)),
            ErrorKind::NotADirectory
        );
    }
}

#[test]
fn the_conformance_bodies_pass_on_the_simulated_disk() {
    for (name, body) in conformance::BODIES {
        for seed in 0..5 {
            let lp = EventLoop::with_config(Config::new(seed).echo(false));
            lp.run_until_complete(body())
                .unwrap_or_else(|failure| panic!("{name}, seed {seed}: {failure}"));
        }
    }
}

/// Seeds each crash property runs.
const SEEDS: u64 = 300;

/// Run `before` on host `db`'s first life, crash it, restart it and run `after` on its
/// second life; what `after` returned.
fn crash_between<B, A, T>(seed: u64, before: B, after: A) -> T
where
    B: Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> + 'static,
    A: Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + 'static,
    T: 'static,
{
    let lp = EventLoop::with_config(Config::new(seed).echo(false));
    let lives = Rc::new(Cell::new(0));
    let found: Rc<RefCell<Option<T>>> = Rc::default();
    let (before, after) = (Rc::new(before), Rc::new(after));
    let (starts, result) = (lives.clone(), found.clone());
    lp.host("db", move || {
        let (starts, result, before, after) = (
            starts.clone(),
            result.clone(),
            before.clone(),
            after.clone(),
        );
        async move {
            starts.set(starts.get() + 1);
            if starts.get() == 1 {
                before().await;
                // Stay up until the crash.
                roof::sleep(Duration::from_secs(3600)).await;
            } else {
                *result.borrow_mut() = Some(after().await);
            }
        }
    })
    .unwrap();
    lp.run_until_complete(async {
        let handle = roof::get_running_loop();
        roof::sleep(Duration::from_secs(1)).await;
        handle.crash("db").unwrap();
        handle.restart("db").unwrap();
        roof::sleep(Duration::from_secs(1)).await;
    })
    .unwrap();
    assert_eq!(lives.get(), 2);
    let value = found.borrow_mut().take();
    value.expect("the second life ran")
}

/// The file's content after the crash, or `None` if it is gone.
fn read_back() -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Vec<u8>>>>> {
    Box::pin(async {
        match fs::read("/data/log").await {
            Ok(bytes) => Some(bytes),
            Err(error) => {
                assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");
                None
            }
        }
    })
}

/// A durable file: created, its directory synced, its first record synced.
async fn durable_file() -> File {
    fs::create_dir_all("/data").await.unwrap();
    let mut file = File::create("/data/log").await.unwrap();
    fs::sync_dir("/data").await.unwrap();
    file.write_all(&[b'A'; 100]).await.unwrap();
    file.sync_all().await.unwrap();
    file
}

#[test]
fn synced_data_always_survives_and_unsynced_data_sometimes_does() {
    let (mut whole, mut none) = (0, 0);
    for seed in 0..SEEDS {
        let content = crash_between(
            seed,
            || {
                Box::pin(async {
                    let mut file = durable_file().await;
                    file.write_all(&[b'B'; 50]).await.unwrap();
                })
            },
            read_back,
        )
        .expect("a synced file in a synced directory survives");
        assert_eq!(
            &content[..100],
            &[b'A'; 100][..],
            "seed {seed}: synced data"
        );
        match content.len() {
            150 => {
                assert_eq!(&content[100..], &[b'B'; 50][..]);
                whole += 1;
            }
            100 => none += 1,
            other => panic!("seed {seed}: a 50-byte write inside one sector tore at {other}"),
        }
    }
    assert!(
        whole > SEEDS / 5 && none > SEEDS / 5,
        "kept {whole}, lost {none}"
    );
}

#[test]
fn a_torn_write_breaks_only_at_a_sector_boundary_and_nothing_unwritten_appears() {
    let (mut torn, mut kept, mut lost) = (0, 0, 0);
    for seed in 0..SEEDS {
        let content = crash_between(
            seed,
            || {
                Box::pin(async {
                    let file = durable_file().await;
                    // Eight sectors at offset 300: boundaries at 512, 1024, ... inside it.
                    let record: Vec<u8> = (0..8 * SECTOR as usize)
                        .map(|i| (i % 251) as u8 + 1)
                        .collect();
                    file.write_at(&record, 300).await.unwrap();
                })
            },
            read_back,
        )
        .unwrap();
        assert_eq!(&content[..100], &[b'A'; 100][..]);
        let end = 300 + 8 * SECTOR as usize;
        match content.len() {
            100 => lost += 1,
            len if len == end => kept += 1,
            len => {
                assert_eq!(
                    len as u64 % SECTOR,
                    0,
                    "seed {seed}: torn at {len}, not a boundary"
                );
                assert!(len > 300 && len < end, "seed {seed}: {len}");
                torn += 1;
            }
        }
        if content.len() > 100 {
            // Between the record and the synced data: the hole, zeros; then the record's
            // own bytes, nothing else.
            assert!(
                content[100..300].iter().all(|&byte| byte == 0),
                "seed {seed}"
            );
            for (i, &byte) in content[300..].iter().enumerate() {
                assert_eq!(byte, (i % 251) as u8 + 1, "seed {seed}: byte {}", 300 + i);
            }
        }
    }
    assert!(
        torn > 10 && kept > 10 && lost > 10,
        "torn {torn}, kept {kept}, lost {lost}"
    );
}

#[test]
fn a_new_name_is_durable_only_once_its_directory_is_synced() {
    let mut outcomes = [0u32; 2];
    for seed in 0..SEEDS {
        let survived = crash_between(
            seed,
            || {
                Box::pin(async {
                    fs::create_dir_all("/data").await.unwrap();
                    fs::sync_dir("/data").await.unwrap();
                    let mut file = File::create("/data/log").await.unwrap();
                    file.write_all(b"synced data, unsynced name").await.unwrap();
                    file.sync_all().await.unwrap();
                })
            },
            read_back,
        );
        if let Some(content) = &survived {
            assert_eq!(content, b"synced data, unsynced name");
        }
        outcomes[usize::from(survived.is_some())] += 1;
    }
    assert!(
        outcomes[0] > 20 && outcomes[1] > 20,
        "gone {}, kept {}",
        outcomes[0],
        outcomes[1]
    );
    // With the directory synced after the create, it always survives.
    for seed in 0..50 {
        let survived = crash_between(
            seed,
            || {
                Box::pin(async {
                    fs::create_dir_all("/data").await.unwrap();
                    fs::write("/data/log", b"x").await.unwrap();
                    File::open("/data/log").await.unwrap();
                    let file = OpenOptions::new()
                        .write(true)
                        .open("/data/log")
                        .await
                        .unwrap();
                    file.sync_all().await.unwrap();
                    fs::sync_dir("/data").await.unwrap();
                })
            },
            read_back,
        );
        assert_eq!(survived.as_deref(), Some(&b"x"[..]), "seed {seed}");
    }
}

#[test]
fn a_rename_without_a_directory_sync_may_be_undone_by_a_crash() {
    let mut seen = [false; 2];
    for seed in 0..100 {
        let (old, new) = crash_between(
            seed,
            || {
                Box::pin(async {
                    fs::create_dir_all("/d").await.unwrap();
                    let file = File::create("/d/tmp").await.unwrap();
                    drop(file);
                    fs::sync_dir("/d").await.unwrap();
                    fs::rename("/d/tmp", "/d/final").await.unwrap();
                })
            },
            || {
                Box::pin(async {
                    (
                        fs::metadata("/d/tmp").await.is_ok(),
                        fs::metadata("/d/final").await.is_ok(),
                    )
                })
            },
        );
        assert!(
            old != new,
            "seed {seed}: exactly one name, never both or none"
        );
        seen[usize::from(new)] = true;
    }
    assert_eq!(seen, [true, true]);
}

#[test]
fn a_failed_sync_drops_what_was_not_durable() {
    let lp = EventLoop::with_config(Config::new(0).echo(false));
    lp.run_until_complete(async {
        let mut file = File::create("/f").await.unwrap();
        file.write_all(b"durable").await.unwrap();
        file.sync_all().await.unwrap();
        roof::get_running_loop().fail_syncs("main", 1).unwrap();
        file.write_all(b" lost").await.unwrap();
        let error = file.sync_all().await.unwrap_err();
        assert_eq!(error.raw_os_error(), Some(5), "EIO");
        assert_eq!(fs::read("/f").await.unwrap(), b"durable");
        // Syncing again succeeds, and does not bring the write back.
        file.sync_all().await.unwrap();
        assert_eq!(fs::read("/f").await.unwrap(), b"durable");
    })
    .unwrap();
}

#[test]
fn errors_have_the_kinds_std_gives() {
    let lp = EventLoop::with_config(Config::new(0).echo(false));
    lp.run_until_complete(async {
        assert_eq!(
            File::open("/nope").await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            File::create("/no/dir/f").await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        fs::create_dir_all("/a/b").await.unwrap();
        assert_eq!(
            File::open("/a").await.unwrap_err().kind(),
            ErrorKind::IsADirectory
        );
        fs::write("/a/f", b"1").await.unwrap();
        assert_eq!(
            fs::create_dir_all("/a/f/g").await.unwrap_err().kind(),
            ErrorKind::NotADirectory
        );
        let mut reader = File::open("/a/f").await.unwrap();
        assert_eq!(
            reader.write(b"x").await.unwrap_err().kind(),
            ErrorKind::PermissionDenied
        );
        assert_eq!(
            fs::remove_file("/a/g").await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            fs::read("/../x").await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        let file = OpenOptions::new().write(true).open("/a/f").await.unwrap();
        assert_eq!(
            file.set_len(fs::FILE_SIZE_MAX + 1)
                .await
                .unwrap_err()
                .kind(),
            ErrorKind::FileTooLarge
        );
        let names = fs::read_dir("/a").await.unwrap();
        assert_eq!(names, [std::path::PathBuf::from("/a/b"), "/a/f".into()]);
        let mut file = File::create("/s").await.unwrap();
        file.write_all(b"hello world").await.unwrap();
        file.seek(std::io::SeekFrom::Start(6)).await.unwrap();
        file.write_all(b"roof!").await.unwrap();
        assert_eq!(fs::read_to_string("/s").await.unwrap(), "hello roof!");
        assert_eq!(fs::metadata("/s").await.unwrap().len(), 11);
        assert!(fs::metadata("/a").await.unwrap().is_dir());
    })
    .unwrap();
}

#[test]
fn disk_operations_take_virtual_time_and_are_traced_deterministically() {
    let run = |seed| {
        let lp = EventLoop::with_config(Config::new(seed).echo(false).trace(TraceMode::Record));
        let took = lp
            .run_until_complete(async {
                let start = roof::time::now();
                let mut file = File::create("/t").await.unwrap();
                file.write_all(b"abc").await.unwrap();
                file.sync_all().await.unwrap();
                roof::time::now() - start
            })
            .unwrap();
        (took, lp.report().trace.unwrap())
    };
    let (took, trace) = run(4);
    assert!(took >= fs::SYNC_LATENCY + 2 * fs::WRITE_LATENCY, "{took:?}");
    let text = trace.render();
    assert!(
        text.contains("disk #1 write /t 0+3") && text.contains("disk #1 sync /t"),
        "{text}"
    );
    assert_eq!(run(4).1, trace, "same seed, same disk trace");
}

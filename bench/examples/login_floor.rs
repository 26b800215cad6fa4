//! The machine's floor for TCP logins: what the kernel alone costs per connect-and-login, with
//! no server logic, no async runtime, no JSON, and the fewest system calls that can do it.
//!
//! One thread accepts, reads the login frame and writes a canned answer (`accept4`, `read`,
//! `write`); client threads open sockets from `127.0.0.x`, connect, write a login frame and
//! read the answer. Every connection stays open, as `hongyan bench idle` holds them. Prints
//! logins/s and the CPU time per login of the accepting thread and of the clients.
//!
//! ```sh
//! cargo run --release -p hongyan-bench --example login_floor -- 15000
//! ```
//!
//! Loopback only; bounded by the connection count (default 15,000; each connection is two
//! file descriptors in this process, so at most 9,000 here unless the file limit allows more).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hongyan_shared::FrameCodec;
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::socket::{setsockopt, sockopt::IpBindAddressNoPort};
use socket2::{Domain, Socket, Type};

const LOGIN: &str = r#"{"bridge":false,"type":0,"dataContent":"{\"loginUserId\":\"u1\",\"loginToken\":\"t\",\"firstLoginTime\":0}","from":"u1","to":"0","QoS":false,"typeu":-1,"sm":-1}"#;
const ANSWER: &str = r#"{"bridge":false,"type":50,"dataContent":"{\"code\":0,\"firstLoginTime\":1795892611544}","from":"0","to":"u1","QoS":false,"typeu":-1,"sm":-1}"#;
const CLIENT_THREADS: usize = 2;
const PER_SOURCE_IP: usize = 4000;

fn frame(body: &str) -> BytesMut {
    let mut out = BytesMut::new();
    FrameCodec::default()
        .encode(body.as_bytes(), &mut out)
        .expect("a short body fits a frame");
    out
}

/// This thread's user + system CPU time.
fn thread_cpu() -> Duration {
    let usage = getrusage(UsageWho::RUSAGE_THREAD).expect("getrusage");
    let (user, system) = (usage.user_time(), usage.system_time());
    let micros = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
    };
    micros(user) + micros(system)
}

fn connect_from(source: Ipv4Addr, target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_tcp_nodelay(true)?;
    setsockopt(&socket, IpBindAddressNoPort, &true).map_err(std::io::Error::from)?;
    socket.bind(&SocketAddr::from((source, 0)).into())?;
    socket.connect(&target.into())?;
    Ok(socket.into())
}

fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(15_000);
    let limit = rlimit::increase_nofile_limit(u64::MAX)?;
    anyhow::ensure!(
        (2 * n + 64) as u64 <= limit,
        "{n} connections need {} open files; the limit here is {limit}",
        2 * n + 64
    );

    let listener = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    listener.set_tcp_nodelay(true)?;
    listener.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    listener.listen(8192)?;
    let listener: TcpListener = listener.into();
    let target = listener.local_addr()?;

    let server = std::thread::spawn(move || -> std::io::Result<(Duration, Vec<TcpStream>)> {
        let answer = frame(ANSWER);
        let mut held = Vec::with_capacity(n);
        let mut buf = [0u8; 1024];
        let cpu = thread_cpu();
        for _ in 0..n {
            let (mut stream, _) = listener.accept()?;
            // The whole login arrives in one segment.
            let _ = stream.read(&mut buf)?;
            stream.write_all(&answer)?;
            held.push(stream);
        }
        Ok((thread_cpu() - cpu, held))
    });

    let start = Instant::now();
    let clients: Vec<_> = (0..CLIENT_THREADS)
        .map(|t| {
            std::thread::spawn(move || -> std::io::Result<(Duration, Vec<TcpStream>)> {
                let login = frame(LOGIN);
                let mut held = Vec::new();
                let mut buf = [0u8; 1024];
                let cpu = thread_cpu();
                for i in (t..n).step_by(CLIENT_THREADS) {
                    let host = u8::try_from(1 + i / PER_SOURCE_IP).unwrap_or(u8::MAX);
                    let mut stream = connect_from(Ipv4Addr::new(127, 0, 0, host), target)?;
                    stream.write_all(&login)?;
                    let _ = stream.read(&mut buf)?;
                    held.push(stream);
                }
                Ok((thread_cpu() - cpu, held))
            })
        })
        .collect();
    let mut client_cpu = Duration::ZERO;
    let mut client_held = Vec::new();
    for client in clients {
        let (cpu, held) = client.join().expect("client thread")?;
        client_cpu += cpu;
        client_held.push(held);
    }
    let (server_cpu, server_held) = server.join().expect("server thread")?;
    let wall = start.elapsed();
    #[allow(clippy::cast_precision_loss)]
    let per_login = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    #[allow(clippy::print_stdout, clippy::cast_precision_loss)]
    {
        println!(
            "{n} logins in {:.2} s: {:.0} logins/s; CPU per login: accepting thread {:.1} µs, \
             clients {:.1} µs ({CLIENT_THREADS} threads)",
            wall.as_secs_f64(),
            n as f64 / wall.as_secs_f64(),
            per_login(server_cpu),
            per_login(client_cpu),
        );
    }
    drop((client_held, server_held));
    Ok(())
}

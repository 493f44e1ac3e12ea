//! Real Redis Sentinel and Cluster set-ups for the shared-cache tests: every
//! process a `redis-server` on a free loopback port, in one temporary
//! directory (no persistence), killed when dropped. `None` (with a printed
//! reason) when `redis-server` or `redis-cli` is not installed.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The primary's name in the Sentinels' configuration.
pub const SERVICE: &str = "fleetprimary";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A port whose cluster bus port (+10000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let p = free_port();
        if p < 55_000 && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
}

fn found(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `redis-server` and `redis-cli` are on PATH; prints the skip
/// line when not.
pub fn available() -> bool {
    for program in ["redis-server", "redis-cli"] {
        if !found(program) {
            println!("SKIPPED: {program} not found (apt-get install redis-server redis-tools)");
            return false;
        }
    }
    true
}

fn temp_dir(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "crosstenant-{kind}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A plain connection to `127.0.0.1:port`, with a read timeout.
pub fn connect(port: u16) -> redis::RedisResult<redis::Connection> {
    let c = redis::Client::open(format!("redis://127.0.0.1:{port}"))?
        .get_connection_with_timeout(Duration::from_secs(2))?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    Ok(c)
}

fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_ping(port: u16) {
    wait_until(&format!("redis on {port}"), Duration::from_secs(20), || {
        connect(port).is_ok_and(|mut c| redis::cmd("PING").query::<String>(&mut c).is_ok())
    });
}

/// One `redis-server` process.
pub struct Node {
    pub port: u16,
    child: Option<Child>,
    args: Vec<String>,
}

impl Node {
    fn spawn(args: &[String]) -> Child {
        Command::new("redis-server")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts")
    }

    fn server(dir: &std::path::Path, port: u16, extra: &[&str]) -> Self {
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let node = Self {
            port,
            child: Some(Self::spawn(&args)),
            args,
        };
        wait_ping(port);
        node
    }

    pub fn connection(&self) -> redis::Connection {
        connect(self.port).expect("redis connection")
    }

    /// SIGKILL, and reaped.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGKILL and start again at once on the same port (empty: no
    /// persistence), as a crashed process restarted by its supervisor.
    /// A replica that was promoted comes back as a primary (Sentinel
    /// rewrote its configuration file so; here: without `--replicaof`).
    pub fn restart(&mut self) {
        self.kill();
        if let Some(i) = self.args.iter().position(|a| a == "--replicaof") {
            self.args.drain(i..i + 3);
        }
        self.child = Some(Self::spawn(&self.args));
        wait_ping(self.port);
    }

    /// Keys matching `pattern` (a test-sized database).
    pub fn keys(&self, pattern: &str) -> usize {
        redis::cmd("KEYS")
            .arg(pattern)
            .query::<Vec<String>>(&mut self.connection())
            .expect("KEYS")
            .len()
    }

    /// Keys in this node's database 0.
    pub fn dbsize(&self) -> u64 {
        redis::cmd("DBSIZE")
            .query(&mut self.connection())
            .expect("DBSIZE")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One primary, one replica, `n` Sentinels watching them (quorum: a
/// majority).
pub struct SentinelSet {
    pub primary: Node,
    pub replica: Node,
    pub sentinels: Vec<Node>,
    dir: PathBuf,
}

impl SentinelSet {
    pub fn start(n: usize) -> Option<Self> {
        if !available() {
            return None;
        }
        let dir = temp_dir("sentinel");
        let primary = Node::server(&dir, free_port(), &[]);
        let replica_port = free_port();
        let replica = Node::server(
            &dir,
            replica_port,
            &["--replicaof", "127.0.0.1", &primary.port.to_string()],
        );
        wait_until("the replica's link", Duration::from_secs(20), || {
            redis::cmd("INFO")
                .arg("replication")
                .query::<String>(&mut replica.connection())
                .is_ok_and(|i| i.contains("master_link_status:up"))
        });
        let quorum = n / 2 + 1;
        let mut sentinels = Vec::new();
        for _ in 0..n {
            let port = free_port();
            let conf = dir.join(format!("sentinel-{port}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                     sentinel monitor {SERVICE} 127.0.0.1 {primary} {quorum}\n\
                     sentinel down-after-milliseconds {SERVICE} 1000\n\
                     sentinel failover-timeout {SERVICE} 5000\n",
                    dir = dir.display(),
                    primary = primary.port
                ),
            )
            .expect("sentinel config");
            let args = vec![conf.display().to_string(), "--sentinel".into()];
            let node = Node {
                port,
                child: Some(Node::spawn(&args)),
                args,
            };
            wait_ping(port);
            sentinels.push(node);
        }
        let set = Self {
            primary,
            replica,
            sentinels,
            dir,
        };
        // Each Sentinel learns of the replica from the primary's INFO.
        for s in &set.sentinels {
            wait_until(
                "the Sentinel to see the replica",
                Duration::from_secs(20),
                || {
                    redis::cmd("SENTINEL")
                        .arg("REPLICAS")
                        .arg(SERVICE)
                        .query::<Vec<redis::Value>>(&mut s.connection())
                        .is_ok_and(|r| !r.is_empty())
                },
            );
        }
        Some(set)
    }

    /// `redis+sentinel://127.0.0.1:s1,…/SERVICE`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        format!("redis+sentinel://{}/{SERVICE}", hosts.join(","))
    }

    /// The port the Sentinels name as primary now.
    pub fn primary_port(&self) -> Option<u16> {
        let addr: Option<(String, String)> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(SERVICE)
            .query(&mut self.sentinels[0].connection())
            .ok()?;
        addr.and_then(|(_, p)| p.parse().ok())
    }

    /// `SENTINEL FAILOVER`; returns once the replica is primary (as the
    /// Sentinels say and as it says itself).
    pub fn failover(&self) -> Duration {
        let started = Instant::now();
        let _: redis::Value = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(SERVICE)
            .query(&mut self.sentinels[0].connection())
            .expect("SENTINEL FAILOVER");
        wait_until("the failover", Duration::from_secs(30), || {
            self.primary_port() == Some(self.replica.port)
                && redis::cmd("ROLE")
                    .query::<Vec<redis::Value>>(&mut self.replica.connection())
                    .ok()
                    .and_then(|r| r.into_iter().next())
                    .is_some_and(
                        |role| matches!(role, redis::Value::BulkString(b) if b == b"master"),
                    )
        });
        started.elapsed()
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        for s in &mut self.sentinels {
            s.kill();
        }
        self.primary.kill();
        self.replica.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Cluster of `n` primaries (no replicas), slots spread by
/// `redis-cli --cluster create`.
pub struct Cluster {
    pub nodes: Vec<Node>,
    dir: PathBuf,
}

impl Cluster {
    pub fn start(n: usize) -> Option<Self> {
        if !available() {
            return None;
        }
        let dir = temp_dir("cluster");
        let nodes: Vec<Node> = (0..n)
            .map(|_| {
                let port = free_cluster_port();
                let conf = format!("nodes-{port}.conf");
                Node::server(
                    &dir,
                    port,
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        &conf,
                        "--cluster-node-timeout",
                        "2000",
                    ],
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for node in &nodes {
            wait_until("cluster_state:ok", Duration::from_secs(30), || {
                redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query::<String>(&mut node.connection())
                    .is_ok_and(|i| i.contains("cluster_state:ok"))
            });
        }
        Some(Self { nodes, dir })
    }

    /// `redis+cluster://` naming the first two nodes only (the client finds
    /// the rest).
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .take(2)
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", hosts.join(","))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

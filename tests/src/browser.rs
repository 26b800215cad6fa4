//! Drives the H5 client (`dist/`, built by `trunk build --release`) in headless Chromium
//! through chromedriver, with fantoccini.
//!
//! A test starts a [`TestServer`](crate::TestServer) that serves `dist/` (see
//! [`serve_web_client`]), starts a [`Driver`] (one chromedriver process), opens one [`Browser`]
//! per user, and reads the page through the same ids and `data-*` attributes the stylesheet
//! uses (`#status[data-state]`, `li.message[data-status]`, `li.conversation[data-peer]`).
//!
//! Browser tests hold [`Driver`]'s lock for their whole run, so the Chromium instances of two
//! tests never compete for the machine's cores; every wait is bounded by [`BROWSER_WAIT`].

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hongyan_server::Config;
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};

/// The longest a browser helper waits for the page to reach a state. Generous: a cold wasm
/// start plus one relogin interval (3 s) fits several times.
pub const BROWSER_WAIT: Duration = Duration::from_secs(20);

/// How often waits poll the page.
const POLL: Duration = Duration::from_millis(50);

/// One browser test at a time per test binary (test binaries themselves run one by one).
static BROWSER_LOCK: Mutex<()> = Mutex::const_new(());

/// The Chromium binary (Debian's package), overridable with `CHROMIUM`.
fn chromium_binary() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// The chromedriver binary, overridable with `CHROMEDRIVER`.
fn chromedriver_binary() -> String {
    std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned())
}

/// The repository's `dist/`, where `trunk build --release` puts the H5 client.
///
/// # Panics
/// When the client has not been built: run `scripts/test` (which builds it) or
/// `trunk build --release` at the repository root first.
pub fn dist_dir() -> PathBuf {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits inside the workspace root")
        .join("dist");
    assert!(
        dist.join("index.html").is_file(),
        "the H5 client is not built ({} has no index.html): run scripts/test, or \
         `trunk build --release` at the repository root, before the browser tests",
        dist.display()
    );
    dist
}

/// Configures a test server to serve the built H5 client at `/`.
pub fn serve_web_client(config: &mut Config) {
    config.web_dir = Some(dist_dir());
}

/// The H5 client's address on `server` (which must serve it, see [`serve_web_client`]).
pub fn page_url(server: &crate::TestServer) -> String {
    format!("http://{}/", server.http)
}

/// A chromedriver process (its own process group, killed on drop), plus the lock that keeps
/// browser tests from running at the same time.
pub struct Driver {
    child: Child,
    url: String,
    profiles: Vec<PathBuf>,
    _turn: MutexGuard<'static, ()>,
}

impl Driver {
    /// Waits for the browser-test lock, then starts chromedriver on a free loopback port.
    ///
    /// # Panics
    /// When chromedriver or Chromium is missing (`scripts/setup` installs both) or does not
    /// come up within [`BROWSER_WAIT`].
    pub async fn start() -> Self {
        let turn = BROWSER_LOCK.lock().await;
        assert!(
            Path::new(&chromium_binary()).is_file(),
            "{} is missing: run scripts/setup (Debian package chromium)",
            chromium_binary()
        );
        // The free port can be taken again before chromedriver binds it, and a loaded machine
        // can start it slowly: try a few ports, each with its own deadline.
        let mut failures = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let log = std::env::temp_dir().join(format!("hongyan-chromedriver-{port}.log"));
            let mut child = Command::new(chromedriver_binary())
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .arg(format!("--log-path={}", log.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start {}: {e} (run scripts/setup: Debian package chromium-driver)",
                        chromedriver_binary()
                    )
                });
            let deadline = Instant::now() + BROWSER_WAIT;
            let outcome = loop {
                if tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .is_ok()
                {
                    break Ok(());
                }
                if let Ok(Some(status)) = child.try_wait() {
                    break Err(format!("exited with {status}"));
                }
                if Instant::now() >= deadline {
                    break Err(format!("not listening after {BROWSER_WAIT:?}"));
                }
                tokio::time::sleep(POLL).await;
            };
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = std::fs::remove_file(&log);
            match outcome {
                Ok(()) => {
                    return Self {
                        child,
                        url: format!("http://127.0.0.1:{port}"),
                        profiles: Vec::new(),
                        _turn: turn,
                    };
                }
                Err(why) => {
                    kill_group(&mut child);
                    let tail: Vec<&str> = log_text.lines().rev().take(5).collect();
                    failures.push(format!("port {port}: {why}; log tail: {tail:?}"));
                }
            }
        }
        panic!("chromedriver did not start: {failures:#?}");
    }

    /// Opens a new headless Chromium with a fresh profile, at `url`.
    pub async fn open(&mut self, url: &str) -> Browser {
        self.open_with(url, &[]).await
    }

    /// Opens a new headless Chromium that accepts any server certificate
    /// (`--ignore-certificate-errors`, this instance only), at `url`: for an HTTPS test server
    /// whose certificate the browser has no way to trust.
    pub async fn open_ignoring_certificate_errors(&mut self, url: &str) -> Browser {
        self.open_with(url, &["--ignore-certificate-errors"]).await
    }

    /// Opens a new headless Chromium with a fresh profile and `extra` arguments, at `url`.
    async fn open_with(&mut self, url: &str, extra: &[&str]) -> Browser {
        let profile = std::env::temp_dir().join(format!(
            "hongyan-chromium-{}-{}-{}",
            std::process::id(),
            self.child.id(),
            self.profiles.len()
        ));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("create a Chromium profile directory");
        self.profiles.push(profile.clone());
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1000,700".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": chromium_binary(),
                "args": args,
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::native()
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("chromedriver starts a Chromium session");
        client.goto(url).await.expect("open the H5 client");
        Browser { client }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        kill_group(&mut self.child);
        for profile in &self.profiles {
            let _ = std::fs::remove_dir_all(profile);
        }
    }
}

/// Kills `child` and everything in the process group it leads (chromedriver and the
/// Chromiums it started), then reaps it.
fn kill_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill")
        .args(["-KILL", "--", &group])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

fn free_port() -> u16 {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// One browser window showing the H5 client.
pub struct Browser {
    client: Client,
}

impl Browser {
    /// The fantoccini client, for anything the helpers below do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Fills the login form and submits it. The user id is typed key by key; the token goes
    /// through the same `input` events.
    pub async fn log_in(&self, user: &str, token: &str) {
        let deadline = Instant::now() + BROWSER_WAIT;
        // Leptos may re-render the field between finding and typing: find it again then.
        loop {
            if let Ok(id) = self.client.find(Locator::Css("#user-id")).await
                && id.send_keys(user).await.is_ok()
            {
                break;
            }
            self.check_deadline(deadline, "#user-id to accept typing")
                .await;
        }
        self.fill("#token", token).await;
        self.click("#login-button").await;
    }

    /// Logs in and waits until the status says online.
    pub async fn log_in_online(&self, user: &str) {
        self.log_in(user, "browser").await;
        self.wait_for_status("online").await;
    }

    /// Opens (or creates) the conversation with `peer` through the "chat with" box.
    pub async fn open_chat(&self, peer: &str) {
        self.fill("#peer-id", peer).await;
        self.click("#open-chat").await;
        self.wait_for(&format!("li.conversation.selected[data-peer=\"{peer}\"]"))
            .await;
    }

    /// Types `text` into the composer and sends it; returns the new message's fingerprint.
    pub async fn send(&self, text: &str) -> String {
        let before = self.count("#thread li.message[data-author=\"me\"]").await;
        self.fill("#message-input", text).await;
        self.click("#send").await;
        let mine = "#thread li.message[data-author=\"me\"]";
        let deadline = Instant::now() + BROWSER_WAIT;
        loop {
            let fps = self.all_js(mine, "e.dataset.fp").await;
            if fps.len() > before {
                return fps.last().cloned().expect("more than before");
            }
            self.check_deadline(deadline, "the sent message to appear")
                .await;
        }
    }

    /// Sets an input's value and fires `input`, as typing does. (chromedriver cannot type
    /// characters outside the Basic Multilingual Plane, such as emoji.)
    pub async fn fill(&self, css: &str, text: &str) {
        self.wait_for(css).await;
        self.client
            .execute(
                "const el = document.querySelector(arguments[0]);
                 el.value = arguments[1];
                 el.dispatchEvent(new Event('input', { bubbles: true }));",
                vec![json!(css), json!(text)],
            )
            .await
            .unwrap_or_else(|e| panic!("fill {css}: {e}"));
    }

    /// Clicks the element matching `css`, once it exists.
    pub async fn click(&self, css: &str) {
        let deadline = Instant::now() + BROWSER_WAIT;
        // An element re-rendered between `find` and `click` is stale: find it again.
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && element.click().await.is_ok()
            {
                return;
            }
            self.check_deadline(deadline, &format!("{css} to be clickable"))
                .await;
        }
    }

    /// Evaluates `expr` (with `e` bound to each element matching `css`) in one script, so no
    /// element can go stale between finding and reading it.
    async fn all_js(&self, css: &str, expr: &str) -> Vec<String> {
        let script = format!(
            "return Array.from(document.querySelectorAll(arguments[0])).map(e => String({expr}));"
        );
        let value = self
            .client
            .execute(&script, vec![json!(css)])
            .await
            .unwrap_or_else(|e| panic!("query {css}: {e}"));
        value
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|v| v.as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until an element matches `css` and returns it.
    pub async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        let deadline = Instant::now() + BROWSER_WAIT;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await {
                return element;
            }
            self.check_deadline(deadline, css).await;
        }
    }

    /// Waits until `#status` has `data-state="{state}"` (`connecting`, `online`,
    /// `reconnecting`, `kicked-out`, `refused`, `logged-out`).
    pub async fn wait_for_status(&self, state: &str) {
        self.wait_for(&format!("#status[data-state=\"{state}\"]"))
            .await;
    }

    /// Waits until our message `fp` has `data-status` in `statuses`; returns the one it has.
    pub async fn wait_for_delivery(&self, fp: &str, statuses: &[&str]) -> String {
        let css = format!("li.message[data-fp=\"{fp}\"]");
        let deadline = Instant::now() + BROWSER_WAIT;
        loop {
            if let Ok(element) = self.client.find(Locator::Css(&css)).await
                && let Ok(Some(status)) = element.attr("data-status").await
                && statuses.contains(&status.as_str())
            {
                return status;
            }
            self.check_deadline(deadline, &format!("{css} to be {statuses:?}"))
                .await;
        }
    }

    /// Waits until the first element matching `css` shows exactly `expected`.
    pub async fn wait_for_text(&self, css: &str, expected: &str) {
        let deadline = Instant::now() + BROWSER_WAIT;
        loop {
            let shown = self
                .all_js(css, "e.innerText")
                .await
                .into_iter()
                .next()
                .unwrap_or_default();
            if shown == expected {
                return;
            }
            self.check_deadline(
                deadline,
                &format!("{css} to show {expected:?} (shows {shown:?})"),
            )
            .await;
        }
    }

    /// How many elements match `css` right now.
    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .map_or(0, |all| all.len())
    }

    /// The visible text of the first element matching `css`, once it exists.
    pub async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + BROWSER_WAIT;
        loop {
            if let Some(text) = self.all_js(css, "e.innerText").await.into_iter().next() {
                return text;
            }
            self.check_deadline(deadline, css).await;
        }
    }

    /// The texts of every message in the open thread, oldest first.
    pub async fn thread_texts(&self) -> Vec<String> {
        self.all_js("#thread li.message .text", "e.innerText").await
    }

    /// Waits until the open thread holds a message whose text is exactly `text`.
    pub async fn wait_for_message(&self, text: &str) {
        let deadline = Instant::now() + BROWSER_WAIT;
        while !self.thread_texts().await.iter().any(|t| t == text) {
            self.check_deadline(deadline, &format!("message {text:?} in the thread"))
                .await;
        }
    }

    /// Closes the browser window and its WebDriver session.
    pub async fn close(self) {
        let _ = self.client.close().await;
    }

    /// Sleeps one poll period, or panics with what the page shows once `deadline` passed.
    async fn check_deadline(&self, deadline: Instant, waiting_for: &str) {
        if Instant::now() >= deadline {
            let page = self
                .client
                .execute("return document.body.innerText;", vec![])
                .await
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .unwrap_or_else(|e| format!("<page unreadable: {e}>"));
            panic!("timed out waiting for {waiting_for}; the page shows:\n{page}");
        }
        tokio::time::sleep(POLL).await;
    }
}

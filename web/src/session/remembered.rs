//! The login of this browser tab, kept in `sessionStorage` so a reload logs in again by
//! itself and the page comes back with its conversations. `sessionStorage` belongs to the tab:
//! closing it forgets the login, and another tab or browser logs in on its own.

use web_sys::Storage;

use crate::state::LoginForm;

/// The keys, one per field of the form.
const USER_ID: &str = "hongyan.login.user-id";
const TOKEN: &str = "hongyan.login.token";
const EXTRA: &str = "hongyan.login.extra";
const SERVER: &str = "hongyan.login.server";

fn storage() -> Option<Storage> {
    web_sys::window()?.session_storage().ok().flatten()
}

/// Keeps `form` for a reload of this tab.
pub fn save(form: &LoginForm) {
    let Some(storage) = storage() else {
        return;
    };
    let fields = [
        (USER_ID, &form.user_id),
        (TOKEN, &form.token),
        (EXTRA, &form.extra),
        (SERVER, &form.server),
    ];
    for (key, value) in fields {
        if storage.set_item(key, value).is_err() {
            // Private browsing or a full quota: a reload then shows the login screen.
            log::info!("the login cannot be kept for a reload");
            forget();
            return;
        }
    }
}

/// The login this tab kept, if any.
pub fn load() -> Option<LoginForm> {
    let storage = storage()?;
    let get = |key| storage.get_item(key).ok().flatten();
    Some(LoginForm {
        user_id: get(USER_ID)?,
        token: get(TOKEN).unwrap_or_default(),
        extra: get(EXTRA).unwrap_or_default(),
        server: get(SERVER)?,
    })
}

/// Forgets the kept login: after a logout, a kickout or a refused login a reload shows the
/// login screen (and never takes a session back from the client that took it over).
pub fn forget() {
    if let Some(storage) = storage() {
        for key in [USER_ID, TOKEN, EXTRA, SERVER] {
            let _ = storage.remove_item(key);
        }
    }
}

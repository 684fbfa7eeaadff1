//! One function per command. Each asks the profile's device
//! ([`Ctx::device`]: the running node, or one started for the command)
//! with one [`Request`] and prints the [`Reply`]: the same whether a node
//! runs or not, because the same code answers both.

use std::io::{IsTerminal, Read};
use std::path::Path;

use anyhow::Context;

use super::print::{self, json, print_message};
use super::progress;
use super::service::ServiceCopy;
use super::{
    usage, Command, Ctx, GroupCmd, MailboxAction, OnOff, RelayAction, Result, ServiceAction,
    ShowHide,
};
use crate::display;
use crate::runtime::api::{
    self, Cursor, Failure, GroupOutcome, Reply, Request, Target, TimerSetting,
};
use crate::runtime::device::Device;
use crate::{GroupAction, NodeEvent, Profile};

/// Runs one command.
pub(super) async fn run(ctx: &Ctx, command: Command) -> Result<()> {
    match command {
        Command::Init { name, allow_weak } => init(ctx, &name, allow_weak),
        Command::Passphrase {
            new_passphrase_file,
            allow_weak,
        } => change_passphrase(ctx, new_passphrase_file.as_deref(), allow_weak).await,
        Command::Run { transports, quiet } => super::relay::run_node(ctx, &transports, quiet).await,
        Command::Wipe { yes } => wipe(ctx, yes).await,
        Command::Relay { action: None, .. } | Command::Demo { .. } | Command::Manual { .. } => {
            unreachable!("dispatch runs these before there is a profile")
        }
        Command::Service { action } => match action {
            ServiceAction::Install {
                no_start,
                keyring,
                run_args,
            } => super::service::install(ctx, &run_args, !no_start, keyring),
            ServiceAction::Remove => super::service::remove(),
            ServiceAction::Status => super::service::status(ctx).await,
        },
        other => {
            let device = ctx.device().await?;
            let result = on_device(ctx, &device, other).await;
            device.close().await;
            result
        }
    }
}

/// A command that is one or more requests to the device.
async fn on_device(ctx: &Ctx, device: &Device, command: Command) -> Result<()> {
    match command {
        Command::Invite => invite(ctx, device).await,
        Command::Add { code, name } => add(ctx, device, code, name).await,
        Command::Contacts => contacts(ctx, device).await,
        Command::Name { new_name } => own_name(ctx, device, new_name).await,
        Command::RenameContact { name, new_name } => {
            rename_contact(ctx, device, name, new_name).await
        }
        Command::DeleteContact { name, yes } => delete_contact(ctx, device, name, yes).await,
        Command::Verify {
            name,
            confirm,
            unconfirm,
        } => {
            let verified = confirm.then_some(true).or(unconfirm.then_some(false));
            verify(ctx, device, name, verified).await
        }
        Command::Send {
            name,
            file: Some(file),
            ..
        } => send_file(ctx, device, Target::Contact(name), &file).await,
        Command::Send { name, text, .. } => send(ctx, device, Target::Contact(name), text).await,
        Command::Save { id, dir } => save(ctx, device, id, &dir).await,
        Command::Export { name, to } => export(ctx, device, name, &to).await,
        Command::Import { file } => import(ctx, device, &file).await,
        Command::Read { name, follow } => read(ctx, device, &name, follow).await,
        Command::Timer { name, set } => timer(ctx, device, Target::Contact(name), set).await,
        Command::Group { action } => group(ctx, device, action).await,
        Command::Carry { set } => carry(ctx, device, set.map(|s| s == OnOff::On)).await,
        Command::Mailbox { action } => mailbox(ctx, device, action).await,
        Command::Notifications {
            text,
            names,
            mute,
            unmute,
            group,
        } => notifications(ctx, device, text, names, mute, unmute, group).await,
        Command::Bluetooth { scan } => bluetooth(ctx, device, scan).await,
        Command::Status => status(ctx, device).await,
        Command::Relay {
            action: Some(action),
            ..
        } => match action {
            RelayAction::Add { address } => relay_add(ctx, device, address).await,
            RelayAction::List => relay_list(ctx, device).await,
            RelayAction::Remove { address } => relay_remove(ctx, device, address).await,
        },
        Command::Init { .. }
        | Command::Passphrase { .. }
        | Command::Run { .. }
        | Command::Wipe { .. }
        | Command::Demo { .. }
        | Command::Manual { .. }
        | Command::Service { .. }
        | Command::Relay { action: None, .. } => {
            unreachable!("handled without a device")
        }
    }
}

/// A reply that is not the one a request answers: a bug between this
/// binary's two halves, said plainly.
fn unexpected(reply: Reply) -> super::CliError {
    super::CliError::Other(anyhow::anyhow!("the device answered {reply:?}"))
}

/// With `--json`, prints the device's reply as it is (`{"reply":
/// "written", "id": …}`), and the command prints nothing else: true.
fn json_reply(ctx: &Ctx, reply: &Reply) -> Result<bool> {
    if ctx.json {
        json(reply)?;
    }
    Ok(ctx.json)
}

/// `strand init`: the one command with no device (there is no profile).
fn init(ctx: &Ctx, name: &str, allow_weak: bool) -> Result<()> {
    if Profile::exists(&ctx.dir) {
        return Err(crate::ProfileError::AlreadyExists(ctx.dir.clone()).into());
    }
    // The name is said wrong before the passphrase is typed twice.
    let name = name.trim();
    strand_sync::check_name(name).map_err(crate::ProfileError::from)?;
    let pass = super::passphrase(ctx, true)?;
    strong_enough(&pass, name, allow_weak)?;
    let p = Profile::create(
        &ctx.dir,
        name,
        &pass,
        super::new_profile_kdf(),
        &mut crate::os_rng(),
    )?;
    println!(
        "Created a profile for {} in {}",
        p.identity().name(),
        ctx.dir.display()
    );
    println!("Your invite code: {}", p.invite()?);
    Ok(())
}

/// The strength check a new passphrase passes (the app's, in
/// [`crate::strength`]), unless `allow_weak`.
fn strong_enough(pass: &str, name: &str, allow_weak: bool) -> Result<()> {
    let s = crate::strength::estimate(pass, name);
    if allow_weak || s.is_enough() {
        return Ok(());
    }
    Err(usage!(
        "the passphrase is too weak: {} (or pass --allow-weak to keep it)",
        s.hint
    ))
}

/// `strand passphrase`: the current passphrase (given or typed), then the
/// new one (from a file, or typed twice); the device checks the current
/// one and the new one's strength, and rewrites the file's header. Then
/// the user service's copy of the passphrase follows
/// ([`super::service::update_service_passphrase`]); if it cannot, the
/// change stands (exit 0) and a warning says what to do.
async fn change_passphrase(ctx: &Ctx, new_from: Option<&Path>, allow_weak: bool) -> Result<()> {
    if !Profile::exists(&ctx.dir) {
        return Err(crate::ProfileError::NotFound(ctx.dir.clone()).into());
    }
    let current = super::passphrase(ctx, false)?;
    let new = match new_from {
        Some(file) => super::passphrase_from_file(file)?,
        None => {
            if !std::io::stdin().is_terminal() {
                return Err(usage!(
                    "no new passphrase: use --new-passphrase-file, or run in a terminal"
                ));
            }
            super::typed_passphrase("new passphrase", true)?
        }
    };
    let given = current.clone();
    let device = Device::open(&ctx.dir, move || Ok(given))
        .await
        .map_err(|e| super::CliError::Other(anyhow::Error::new(e)))?;
    let result = device
        .call(Request::ChangePassphrase {
            current: api::Secret::new(current.as_str()),
            new: api::Secret::new(new.as_str()),
            allow_weak,
        })
        .await;
    device.close().await;
    match result? {
        Reply::Done => {}
        other => return Err(unexpected(other)),
    }
    // The new passphrase is in force from here, whatever follows: said
    // before the service's copy is touched.
    if !ctx.json {
        println!("Passphrase changed: the profile opens with the new one only.");
    }
    let service = super::service::update_service_passphrase(&ctx.dir, &current, &new);
    if ctx.json {
        json(&serde_json::json!({
            "changed": true,
            "service_passphrase": match &service {
                Ok(ServiceCopy::NoService) => "none",
                Ok(_) => "updated",
                Err(_) => "stale",
            },
        }))?;
    }
    match service {
        Ok(copy) => {
            if let Some(words) = copy.words().filter(|_| !ctx.json) {
                println!("{words}");
            }
        }
        Err(stale) => eprintln!("{}", stale.warning()),
    }
    Ok(())
}

/// `strand invite`.
async fn invite(ctx: &Ctx, device: &Device) -> Result<()> {
    let reply = device.call(Request::Invite).await?;
    if json_reply(ctx, &reply)? {
        return Ok(());
    }
    match reply {
        Reply::Invite { code } => println!("{code}"),
        other => return Err(unexpected(other)),
    }
    Ok(())
}

/// `strand name`: the user's own name, or a new one.
async fn own_name(ctx: &Ctx, device: &Device, new_name: Option<String>) -> Result<()> {
    if let Some(name) = new_name {
        device.call(Request::Rename { name }).await?;
    }
    let status = match device.call(Request::Status).await? {
        Reply::Status(s) => s,
        other => return Err(unexpected(other)),
    };
    if ctx.json {
        return json(&serde_json::json!({
            "name": status.name,
            "problem": status.name_problem,
        }));
    }
    println!("{}", crate::display::one_line(&status.name));
    if let Some(warning) = status.name_warning() {
        eprintln!("{warning}");
    }
    Ok(())
}

/// `strand add`.
async fn add(ctx: &Ctx, device: &Device, code: String, name: String) -> Result<()> {
    let reply = device.call(Request::Add { code, name }).await?;
    if json_reply(ctx, &reply)? {
        return Ok(());
    }
    let Reply::Added { contact } = reply else {
        return Err(unexpected(reply));
    };
    println!(
        "Added {}. They must add your invite too (`strand invite`). Then compare safety numbers: `strand verify {:?}`.",
        contact.name, contact.name
    );
    if let Some(other) = &contact.lookalike {
        println!(
            "Careful: {:?} looks like {other:?}. Make sure you can tell them apart.",
            contact.name
        );
    }
    Ok(())
}

/// `strand contacts`.
async fn contacts(ctx: &Ctx, device: &Device) -> Result<()> {
    let list = match device.call(Request::Contacts).await? {
        Reply::Contacts { contacts } => contacts,
        other => return Err(unexpected(other)),
    };
    if ctx.json {
        return json(&list);
    }
    if list.is_empty() {
        println!("No contacts yet. Add one with `strand add CODE --name NAME`.");
    }
    for c in list {
        let mark = if c.mailbox {
            "mailbox: carries sealed messages, reads nothing"
        } else if c.verified {
            "verified"
        } else if c.legacy {
            "NOT VERIFIED (old invite): run `strand verify`"
        } else {
            "not verified"
        };
        println!(
            "{:<24} {}  {mark}",
            display::one_line(&c.name),
            &c.key[..16]
        );
        if let Some(other) = &c.lookalike {
            println!(
                "{:<24} ^ looks like \"{}\": check which is which",
                "",
                display::one_line(other)
            );
        }
    }
    Ok(())
}

/// `strand rename-contact`.
async fn rename_contact(ctx: &Ctx, device: &Device, name: String, new_name: String) -> Result<()> {
    let reply = device
        .call(Request::RenameContact {
            contact: name.clone(),
            name: new_name,
        })
        .await?;
    if json_reply(ctx, &reply)? {
        return Ok(());
    }
    let Reply::Renamed { contact } = reply else {
        return Err(unexpected(reply));
    };
    let (old, new) = (display::one_line(&name), display::one_line(&contact.name));
    println!("\"{old}\" is now called \"{new}\".");
    if let Some(other) = &contact.lookalike {
        println!(
            "Careful: \"{new}\" looks like \"{}\". Make sure you can tell them apart.",
            display::one_line(other)
        );
    }
    Ok(())
}

/// `strand delete-contact`: asks the user to type the name first, unless
/// `yes`.
async fn delete_contact(ctx: &Ctx, device: &Device, name: String, yes: bool) -> Result<()> {
    let shown = display::one_line(&name);
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(usage!(
                "refusing to delete a contact without confirmation: run it in a terminal, or pass --yes"
            ));
        }
        eprintln!(
            "This deletes \"{shown}\" and every message of your conversation from this device. It cannot be undone; they are not told, and your groups keep them."
        );
        eprint!("Type their name ({shown}) to delete them: ");
        let mut typed = String::new();
        std::io::stdin()
            .read_line(&mut typed)
            .context("reading the confirmation")?;
        if typed.trim() != name.trim() {
            return Err(usage!("not deleted: that was not {shown:?}"));
        }
    }
    let reply = device
        .call(Request::DeleteContact {
            contact: name.clone(),
        })
        .await?;
    if json_reply(ctx, &reply)? {
        return Ok(());
    }
    let Reply::DeletedContact { name, messages } = reply else {
        return Err(unexpected(reply));
    };
    let plural = if messages == 1 { "" } else { "s" };
    println!(
        "Deleted \"{}\" and {messages} message{plural} of your conversation.",
        display::one_line(&name)
    );
    Ok(())
}

/// `strand verify`.
async fn verify(ctx: &Ctx, device: &Device, name: String, verified: Option<bool>) -> Result<()> {
    let view = match device
        .call(Request::Verify {
            contact: name,
            verified,
        })
        .await?
    {
        Reply::Safety(v) => v,
        other => return Err(unexpected(other)),
    };
    if ctx.json {
        return json(&view);
    }
    let groups: Vec<&str> = view.safety_number.split(' ').collect();
    let name = display::one_line(&view.contact.name);
    println!("Safety number with {name}:\n");
    for row in groups.chunks(4) {
        println!("    {}", row.join("  "));
    }
    println!();
    match (verified, view.contact.verified) {
        (Some(true), _) => println!("{name} is now marked verified."),
        (Some(false), _) => println!("{name} is no longer marked verified."),
        (None, true) => println!("{name} is verified."),
        (None, false) => {
            if view.contact.legacy {
                println!(
                    "{name} was added from an old invite code, which could not prove that its keys belong together."
                );
            }
            println!(
                "Compare this number with the one {name}'s Strand shows for you, in person or over a channel you trust. \
                 If every digit matches, run `strand verify {:?} --confirm`. If not, someone may stand between you: \
                 do not trust this contact.",
                view.contact.name
            );
        }
    }
    Ok(())
}

/// The text given, or standard input without its final newlines, as
/// [`crate::runtime::api::check_text`] allows.
fn text_to_send(text: Option<String>) -> Result<String> {
    use crate::runtime::api::{check_text, check_text_length};
    let text = match text {
        Some(t) => t,
        None => {
            // Read only a little past what a message holds (room for the
            // final newlines): enough to tell it is too long.
            let cap = strand_sync::limits::MAX_BODY_LEN + 4096;
            let mut input = std::io::stdin().lock();
            let mut bytes = Vec::new();
            (&mut input)
                .take(cap as u64)
                .read_to_end(&mut bytes)
                .context("reading standard input")?;
            let full = bytes.len() == cap;
            let end = bytes.iter().rposition(|b| *b != b'\n').map_or(0, |i| i + 1);
            bytes.truncate(end);
            check_text_length(bytes.len())?;
            if full {
                // Cut off in a run of newlines: what follows is more text
                // unless it is newlines to the end.
                let mut rest = [0u8; 4096];
                loop {
                    let n = input.read(&mut rest).context("reading standard input")?;
                    if n == 0 {
                        break;
                    }
                    if rest[..n].iter().any(|b| *b != b'\n') {
                        check_text_length(usize::MAX)?;
                    }
                }
            }
            String::from_utf8(bytes)
                .map_err(|_| usage!("standard input is not UTF-8 text: send a file with --file"))?
        }
    };
    check_text(&text)?;
    Ok(text)
}

/// `strand send` and `strand group send`.
async fn send(ctx: &Ctx, device: &Device, to: Target, text: Option<String>) -> Result<()> {
    let text = text_to_send(text)?;
    let name = to.name().to_owned();
    let reply = device.call(Request::Send { to, text }).await?;
    if json_reply(ctx, &reply)? {
        return Ok(());
    }
    match reply {
        Reply::Written { .. } => {
            println!("Queued for {name}: it goes out when your node syncs with them.");
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}

/// An absolute path a device can take (the node may run in another
/// directory, and the socket carries UTF-8 only). Every device refuses a
/// path that is not UTF-8 ([`check_path`](crate::runtime::api::check_path)),
/// but one sent to a running node is refused by the client as it talks to
/// the node, which `Device::call` words as a failure to talk to it (exit
/// 2): checked here, it is the same bad input (exit 1) either way.
fn absolute(path: &Path) -> Result<std::path::PathBuf> {
    let path = std::path::absolute(path).with_context(|| format!("{}", path.display()))?;
    crate::runtime::commands::utf8_path(&path)?;
    Ok(path)
}

/// `strand send --file` and `strand group send --file`.
async fn send_file(ctx: &Ctx, device: &Device, to: Target, path: &Path) -> Result<()> {
    let path = absolute(path)?;
    let name = to.name().to_owned();
    let label = format!(
        "Sealing {}",
        path.file_name()
            .map_or_else(String::new, |n| display::one_line(&n.to_string_lossy()))
    );
    let request = |task| Request::SendFile {
        to,
        path: path.clone(),
        task,
    };
    let reply = progress::call_showing(ctx, device, &label, progress::Unit::Bytes, request).await?;
    if json_reply(ctx, &reply)? {
        return Ok(());
    }
    match reply {
        Reply::Written { .. } => {
            println!(
                "Queued {} for {name}: it goes out when your node syncs with them.",
                path.display()
            );
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}

/// `strand save`.
async fn save(ctx: &Ctx, device: &Device, id: String, dir: &Path) -> Result<()> {
    let dir = absolute(dir)?;
    let request = |task| Request::Save { id, dir, task };
    let reply =
        progress::call_showing(ctx, device, "Saving", progress::Unit::Bytes, request).await?;
    if json_reply(ctx, &reply)? {
        return Ok(());
    }
    match reply {
        Reply::Saved { path } => {
            println!("Saved {}", display::one_line(&path.display().to_string()));
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}

/// `strand export NAME --to FILE`.
async fn export(ctx: &Ctx, device: &Device, contact: String, to: &Path) -> Result<()> {
    let to = absolute(to)?;
    let label = format!("Writing the bundle for {}", display::one_line(&contact));
    let request = |task| Request::Export { contact, to, task };
    let done = match progress::call_showing(ctx, device, &label, progress::Unit::Messages, request)
        .await?
    {
        Reply::Exported(e) => e,
        other => return Err(unexpected(other)),
    };
    if ctx.json {
        return json(&done);
    }
    let contact = display::one_line(&done.contact);
    println!(
        "Wrote {} for {contact} into {} ({} bytes). Only {contact} can open it.",
        done.summary(),
        display::one_line(&done.path.display().to_string()),
        done.bytes,
    );
    Ok(())
}

/// `strand import FILE`.
async fn import(ctx: &Ctx, device: &Device, file: &Path) -> Result<()> {
    let path = absolute(file)?;
    let request = |task| Request::Import { path, task };
    let done = match progress::call_showing(
        ctx,
        device,
        "Reading the bundle",
        progress::Unit::Bytes,
        request,
    )
    .await?
    {
        Reply::Imported(i) => i,
        other => return Err(unexpected(other)),
    };
    if ctx.json {
        json(&done)?;
    } else {
        println!("{}", done.summary());
    }
    if let Some(why) = &done.incomplete {
        return Err(super::CliError::Other(anyhow::anyhow!(
            "the import stopped before the end ({why}); what was stored stays: import the file again to finish"
        )));
    }
    Ok(())
}

/// `strand read [--follow]`.
async fn read(ctx: &Ctx, device: &Device, name: &str, follow: bool) -> Result<()> {
    let mut name = name.to_owned();
    // With --follow, listen before reading, so that nothing arriving in
    // between is missed.
    if follow && !device.is_running() {
        return Err(Failure::refused("following needs a running node (`strand run`)").into());
    }
    let mut events = if follow {
        Some(device.follow().await?)
    } else {
        None
    };
    let mut last = None;
    print_after(ctx, device, &name, &mut last).await?;
    let Some(events) = &mut events else {
        return Ok(());
    };
    while let Some(e) = events.next().await {
        let theirs = match e {
            NodeEvent::Received {
                contact,
                group: None,
                ..
            } => contact == name,
            // What was missed, or a bundle brought, may have been theirs.
            NodeEvent::Missed { .. } | NodeEvent::Imported { .. } => true,
            // Renamed meanwhile: follow them under the new name.
            NodeEvent::ContactRenamed { from, to } if from == name => {
                name = to;
                false
            }
            _ => false,
        };
        if theirs {
            // Read back from the store: where it is shown, and marked
            // read, as the pages before it.
            print_after(ctx, device, &name, &mut last).await?;
        }
    }
    Ok(())
}

/// Prints the conversation after `last` (from the start if `None`), a
/// page at a time (a long conversation is never held whole), and moves
/// `last` to the last message printed. Each page is marked read. A text
/// stored as a page is read, shown among its messages or between two
/// pages, is not passed over: the node ends that page below it and
/// starts the next just above the last message it answered
/// ([`Request::Read`]), so no text before `last` is left unprinted.
async fn print_after(
    ctx: &Ctx,
    device: &Device,
    name: &str,
    last: &mut Option<Cursor>,
) -> Result<()> {
    let from = last.clone();
    each_page(
        device,
        from,
        |from| Request::Read {
            contact: name.to_owned(),
            from,
            limit: None,
        },
        |reply| match reply {
            Reply::Page(p) => Ok((p.messages, p.next)),
            other => Err(Box::new(other)),
        },
        |m: api::MessageView| {
            // A page starts at its cursor, inclusive: skip what was printed.
            if last.as_ref().is_some_and(|c| c.id == m.id) {
                return Ok(());
            }
            print_message(&m, ctx.json)?;
            *last = Some(Cursor {
                shown: Some(m.shown),
                time: m.time,
                id: m.id,
            });
            Ok(())
        },
    )
    .await
}

/// Asks for a conversation a page at a time from `from` on (the start if
/// `None`), as the device pages it ([`Request::Read`],
/// [`Request::GroupRead`]: each page marked read as it is answered), and
/// hands each message to `each` in order. `ask` makes the request for the
/// page at a cursor; `open` takes the page's messages and the next one's
/// cursor out of the reply, or gives back a reply of another kind.
async fn each_page<M>(
    device: &Device,
    mut from: Option<Cursor>,
    ask: impl Fn(Option<Cursor>) -> Request,
    open: impl Fn(Reply) -> std::result::Result<(Vec<M>, Option<Cursor>), Box<Reply>>,
    mut each: impl FnMut(M) -> Result<()>,
) -> Result<()> {
    loop {
        let (messages, next) =
            open(device.call(ask(from)).await?).map_err(|other| unexpected(*other))?;
        for m in messages {
            each(m)?;
        }
        match next {
            Some(next) => from = Some(next),
            None => return Ok(()),
        }
    }
}

/// `strand timer` and `strand group timer`.
async fn timer(ctx: &Ctx, device: &Device, of: Target, set: Option<String>) -> Result<()> {
    let setting = match &set {
        Some(s) => Some(TimerSetting::parse(s).map_err(super::CliError::Usage)?),
        None => None,
    };
    let name = of.name().to_owned();
    let reply = device.call(Request::Timer { of, set: setting }).await?;
    if json_reply(ctx, &reply)? {
        return Ok(());
    }
    let label = match reply {
        Reply::Timer(t) => t.label,
        other => return Err(unexpected(other)),
    };
    match (set.is_some(), label.as_str()) {
        (true, "off") => println!("Messages with {name} stay from now on."),
        (true, l) => println!(
            "Messages written with {name} from now on disappear after {l}, on every device."
        ),
        (false, "off") => println!("Messages with {name} stay (no timer)."),
        (false, l) => println!("Messages with {name} disappear after {l}."),
    }
    Ok(())
}

/// The groups.
async fn groups(device: &Device) -> Result<Vec<api::GroupView>> {
    match device.call(Request::Groups).await? {
        Reply::Groups { groups } => Ok(groups),
        other => Err(unexpected(other)),
    }
}

/// `strand group …`.
async fn group(ctx: &Ctx, device: &Device, action: GroupCmd) -> Result<()> {
    let change = |group: &str, action: GroupAction| Request::GroupChange {
        group: group.to_owned(),
        action,
    };
    match action {
        GroupCmd::Create { name, with } => {
            let reply = device
                .call(Request::GroupCreate {
                    name: name.clone(),
                    with: with.clone(),
                })
                .await?;
            if json_reply(ctx, &reply)? {
                return Ok(());
            }
            println!(
                "Created {name:?} with {}. Each gets a welcome when you next sync with them.",
                with.join(", ")
            );
        }
        GroupCmd::List => {
            let list = groups(device).await?;
            if ctx.json {
                return json(&list);
            }
            if list.is_empty() {
                println!("No groups yet. Make one with `strand group create NAME --with A,B`.");
            }
            for g in list {
                println!("{}", print::group_line(&g));
            }
        }
        GroupCmd::Members { group } => {
            let members = match device.call(Request::GroupMembers { group }).await? {
                Reply::Members { members } => members,
                other => return Err(unexpected(other)),
            };
            if ctx.json {
                return json(&members);
            }
            for m in members {
                let mut notes = Vec::new();
                if m.creator {
                    notes.push("creator".to_owned());
                } else if m.admin {
                    notes.push("admin".to_owned());
                }
                if !m.verified {
                    notes.push("unverified name (not your contact)".to_owned());
                }
                match &m.chosen {
                    Some(c) if *c != m.name => {
                        notes.push(format!("calls themselves “{}”", display::one_line(c)));
                    }
                    _ => {}
                }
                println!("{:<24} {}", display::one_line(&m.name), notes.join(", "));
            }
        }
        GroupCmd::Add { group, contact } => {
            let reply = device
                .call(change(&group, GroupAction::Add(contact.clone())))
                .await?;
            if json_reply(ctx, &reply)? {
                return Ok(());
            }
            println!(
                "Added {contact} to {group}; they get a welcome when you next sync with them."
            );
        }
        GroupCmd::Remove { group, member } => {
            let reply = device
                .call(change(&group, GroupAction::Remove(member.clone())))
                .await?;
            if json_reply(ctx, &reply)? {
                return Ok(());
            }
            println!("Removed {member} from {group}: the group has a new key they do not get. What they already had, they keep.");
        }
        GroupCmd::Admin { group, member } => {
            let reply = device
                .call(change(&group, GroupAction::MakeAdmin(member.clone())))
                .await?;
            if json_reply(ctx, &reply)? {
                return Ok(());
            }
            println!("{member} is now an admin of {group}.");
        }
        GroupCmd::Leave { group } => {
            let reply = device.call(change(&group, GroupAction::Leave)).await?;
            if json_reply(ctx, &reply)? {
                return Ok(());
            }
            match reply {
                Reply::GroupChanged {
                    outcome: GroupOutcome::AskedToLeave,
                } => println!(
                    "You asked to leave {group}: the first admin who syncs with the group removes you (a new key you do not get). You keep what you have."
                ),
                Reply::GroupChanged { .. } => println!(
                    "You left {group}. You keep what you have; what is written after, you cannot read."
                ),
                other => return Err(unexpected(other)),
            }
        }
        GroupCmd::Send {
            group,
            file: Some(file),
            ..
        } => send_file(ctx, device, Target::Group(group), &file).await?,
        GroupCmd::Send { group, text, .. } => send(ctx, device, Target::Group(group), text).await?,
        GroupCmd::Timer { group, set } => timer(ctx, device, Target::Group(group), set).await?,
        GroupCmd::Read { group } => {
            let mut any = false;
            each_page(
                device,
                None,
                |from| Request::GroupRead {
                    group: group.clone(),
                    from,
                    limit: None,
                },
                |reply| match reply {
                    Reply::GroupMessages { messages, next } => Ok((messages, next)),
                    other => Err(Box::new(other)),
                },
                |m: api::GroupMessageView| {
                    any = true;
                    print::print_group_message(&m, ctx.json)
                },
            )
            .await?;
            if !any && !ctx.json {
                println!("No messages in {group} yet.");
            }
        }
    }
    Ok(())
}

/// `strand notifications`: changes what was asked, then shows the settings.
async fn notifications(
    ctx: &Ctx,
    device: &Device,
    text: Option<ShowHide>,
    names: Option<ShowHide>,
    mute: Option<String>,
    unmute: Option<String>,
    group: bool,
) -> Result<()> {
    use crate::profile::prefs::PreferenceChange;
    if group && mute.is_none() && unmute.is_none() {
        return Err(usage!("--group goes with --mute or --unmute"));
    }
    let mut changes = Vec::new();
    if let Some(t) = text {
        changes.push(PreferenceChange::ShowText {
            on: t == ShowHide::Show,
        });
    }
    if let Some(n) = names {
        changes.push(PreferenceChange::ShowNames {
            on: n == ShowHide::Show,
        });
    }
    for (name, muted) in [(mute, true), (unmute, false)] {
        if let Some(name) = name {
            changes.push(match group {
                true => PreferenceChange::MuteGroup { name, muted },
                false => PreferenceChange::MuteContact { name, muted },
            });
        }
    }
    let prefs = match device.call(Request::Preferences { set: changes }).await? {
        Reply::Preferences(p) => p,
        other => return Err(unexpected(other)),
    };
    if ctx.json {
        return json(&prefs);
    }
    // Muted groups with the id `strand group list` shows: two may share
    // a name.
    let ids: Vec<(String, String)> = match prefs.muted_group_keys.is_empty() {
        true => Vec::new(),
        false => groups(device)
            .await?
            .into_iter()
            .map(|g| (g.key, g.id))
            .collect(),
    };
    let shown = match (prefs.show_names, prefs.show_text) {
        (true, true) => {
            "Notifications show who wrote and the text \
             (`--text hide` for who wrote only, `--names hide` to name no one)."
        }
        (true, false) => {
            "Notifications show who wrote, not the text \
             (`--text show` to show it, `--names hide` to name no one)."
        }
        (false, true) => {
            "Notifications show the text, not who wrote or in which group \
             (`--names show` to name them, `--text hide` to hide the text)."
        }
        (false, false) => {
            "Notifications show only that a message came, not who wrote or what \
             (`--names show` to name them, `--text show` to show the text)."
        }
    };
    println!("{shown}");
    let muted: Vec<String> = prefs
        .muted_contacts
        .iter()
        .map(|c| display::one_line(c))
        .chain(
            prefs
                .muted_groups
                .iter()
                .zip(&prefs.muted_group_keys)
                .map(|(g, key)| {
                    let id = ids.iter().find(|(k, _)| k == key).map_or(key, |(_, id)| id);
                    format!("{} (group {id})", display::one_line(g))
                }),
        )
        .collect();
    if muted.is_empty() {
        println!("Nothing is muted.");
    } else {
        println!("Muted: {}.", muted.join(", "));
    }
    println!(
        "Closing the app's window {} (a setting in the app).",
        if prefs.keep_running {
            "leaves it syncing and notifying"
        } else {
            "stops syncing"
        }
    );
    Ok(())
}

/// `strand bluetooth [--scan SETTING]`: changes the battery setting if
/// asked, then shows it.
async fn bluetooth(
    ctx: &Ctx,
    device: &Device,
    scan: Option<strand_transport::ble::duty::Duty>,
) -> Result<()> {
    use crate::profile::prefs::PreferenceChange;
    use strand_transport::ble::duty::Duty;
    let set = scan
        .map(|duty| vec![PreferenceChange::Bluetooth { duty }])
        .unwrap_or_default();
    let prefs = match device.call(Request::Preferences { set }).await? {
        Reply::Preferences(p) => p,
        other => return Err(unexpected(other)),
    };
    if ctx.json {
        return json(&serde_json::json!({ "scan": prefs.bluetooth.name() }));
    }
    let on = |d: Duty| format!("{:.1} %", d.schedule().radio_on() * 100.0);
    println!(
        "Bluetooth scans: {} — {} (radio on {}).",
        prefs.bluetooth,
        prefs.bluetooth.describe(),
        on(prefs.bluetooth)
    );
    let others: Vec<String> = Duty::ALL
        .into_iter()
        .filter(|d| *d != prefs.bluetooth)
        .map(|d| format!("{d} ({})", on(d)))
        .collect();
    println!(
        "Also: {} (`strand bluetooth --scan SETTING`; a running node follows at once).",
        others.join(", ")
    );
    Ok(())
}

/// `strand carry [on|off]`.
async fn carry(ctx: &Ctx, device: &Device, set: Option<bool>) -> Result<()> {
    let status = match device.call(Request::Carry { set }).await? {
        Reply::Carry(s) => s,
        other => return Err(unexpected(other)),
    };
    if ctx.json {
        return print::json_line(&status);
    }
    let mib = |b: u64| b as f64 / f64::from(1u32 << 20);
    if status.carrying {
        println!(
            "You carry sealed messages for your contacts: {} held ({:.2} of {:.0} MiB; the oldest go first when full, {} so far).",
            status.held,
            mib(status.held_bytes),
            mib(status.budget),
            status.evicted
        );
    } else {
        println!("You do not carry messages for your contacts (`strand carry on` to start).");
        if status.held > 0 {
            println!(
                "Still held until delivered or expired: {} ({:.2} MiB).",
                status.held,
                mib(status.held_bytes)
            );
        }
    }
    println!(
        "Contacts who carry for you: {}. Your messages on their way through them: {}. Messages that reached you this way: {}.",
        status.carriers, status.spreading, status.opened
    );
    if let Some(until) = status.held_back_until {
        println!(
            "Held back from carriers while they may still reach their recipient directly: {} (the first until about {}).",
            status.held_back,
            print::format_time(until)
        );
    }
    if status.waiting > 0 {
        println!("Waiting to meet a contact who carries: {}.", status.waiting);
    }
    Ok(())
}

/// `strand mailbox [init CODE | add CODE]`.
async fn mailbox(ctx: &Ctx, device: &Device, action: Option<MailboxAction>) -> Result<()> {
    let action = action.map(|a| match a {
        MailboxAction::Init { code } => api::MailboxAction::Init { code },
        MailboxAction::Add { code } => api::MailboxAction::Add { code },
    });
    let view = match device.call(Request::Mailbox { action }).await? {
        Reply::Mailbox(v) => v,
        other => return Err(unexpected(other)),
    };
    if ctx.json {
        return print::json_line(&view);
    }
    match (&view.owner, &view.mailbox) {
        (Some(owner), _) => {
            let owner = display::one_line(owner);
            println!("This device is the mailbox of {owner}: it carries sealed messages for them and their contacts, and cannot read them.");
            if view.code.is_empty() {
                println!("No pairing code can be made while your name breaks today's naming rules (`strand status` says why): choose another with `strand name NEW_NAME`.");
            } else {
                println!("On {owner}'s device, pair it with:\n  strand mailbox add {}", view.code);
            }
        }
        (None, Some(name)) => println!(
            "Your mailbox is paired (contact \"{}\"). Your contacts learn it the next time you sync with them; messages for you wait there while you are away.",
            display::one_line(name)
        ),
        (None, None) => println!(
            "No mailbox. On a device you own, `strand init`, then `strand mailbox init CODE` with your invite code (`strand invite`), then `strand mailbox add` here with the code it prints."
        ),
    }
    Ok(())
}

/// `strand status`.
async fn status(ctx: &Ctx, device: &Device) -> Result<()> {
    let status = match device.call(Request::Status).await? {
        Reply::Status(s) => s,
        other => return Err(unexpected(other)),
    };
    if ctx.json {
        return json(&status);
    }
    print::status(&status);
    Ok(())
}

/// `strand relay add`.
async fn relay_add(ctx: &Ctx, device: &Device, address: String) -> Result<()> {
    let reply = device.call(Request::RelayAdd { address }).await?;
    if json_reply(ctx, &reply)? {
        return Ok(());
    }
    match reply {
        Reply::Relay { address } => {
            println!("Added relay {address}. Your contacts learn it the next time you sync.");
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}

/// `strand relay list`.
async fn relay_list(ctx: &Ctx, device: &Device) -> Result<()> {
    let list = match device.call(Request::Relays).await? {
        Reply::Relays { relays } => relays,
        other => return Err(unexpected(other)),
    };
    if ctx.json {
        return json(&list);
    }
    if list.is_empty() {
        println!(
            "No relays. Add one with `strand relay add MULTIADDR` (run one with `strand relay`)."
        );
    }
    for r in &list {
        print::print_relay(r);
    }
    Ok(())
}

/// `strand relay remove`.
async fn relay_remove(ctx: &Ctx, device: &Device, address: String) -> Result<()> {
    let reply = device.call(Request::RelayRemove { address }).await?;
    if json_reply(ctx, &reply)? {
        return Ok(());
    }
    match reply {
        Reply::Relay { address } => {
            println!("Removed relay {address}.");
            Ok(())
        }
        other => Err(unexpected(other)),
    }
}

/// `strand wipe`: stops a running node (it lets go of the profile),
/// then destroys the profile, then the user service that ran it, if one
/// did ([`super::service::ProfileService`]: its passphrase and its
/// unit). Needs no passphrase (so a `--passphrase-file` given is not
/// read): whoever can delete the folder can destroy it anyway; this
/// makes it fast and thorough. What of the service could
/// not be removed is a warning on standard error, with how to remove it;
/// the wipe stands (exit 0).
async fn wipe(ctx: &Ctx, yes: bool) -> Result<()> {
    if !Profile::exists(&ctx.dir) {
        return Err(crate::ProfileError::NotFound(ctx.dir.clone()).into());
    }
    let name = ctx
        .dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ctx.dir.display().to_string());
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(usage!(
                "refusing to wipe without confirmation: run it in a terminal, or pass --yes"
            ));
        }
        eprintln!(
            "This destroys the profile in {} for good: identity, contacts, every message. It cannot be undone.",
            ctx.dir.display()
        );
        eprint!("Type the folder's name ({name}) to wipe it: ");
        let mut typed = String::new();
        std::io::stdin()
            .read_line(&mut typed)
            .context("reading the confirmation")?;
        if typed.trim() != name {
            return Err(usage!("not wiped: that was not {name:?}"));
        }
    }
    // A running node first stops and lets go of the profile.
    Device::stop_running(&ctx.dir)
        .await
        .map_err(|e| super::CliError::Other(e.into()))?;
    // Which service runs it, found while its folder (and any link to it)
    // still resolves.
    let service = super::service::ProfileService::of(&ctx.dir);
    let wiped = crate::wipe::wipe(&ctx.dir)?;
    println!(
        "Wiped {}: {} key copies destroyed, {} bytes overwritten, the folder removed.",
        ctx.dir.display(),
        wiped.key_copies,
        wiped.bytes
    );
    // Only now, with the keys gone: a keyring or a user manager that
    // does not answer must not hold the wipe up.
    let service = service.forget();
    for removed in &service.removed {
        println!("{}", removed.words());
    }
    println!(
        "Not reached by any wipe: copies on SSD/flash blocks the drive remapped, file-system snapshots, backups, swap. See the README."
    );
    for left in &service.left {
        eprintln!("{}", left.warning());
    }
    Ok(())
}

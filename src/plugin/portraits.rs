//! Portraits: observers notice faces being added, replaced and removed; a system registers
//! each new or changed portrait with the worker once its image has loaded.

use bevy::asset::{LoadState, RenderAssetUsages};
use bevy::ecs::system::SystemParam;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use bevy::tasks::{AsyncComputeTaskPool, block_on, poll_once};

use super::align::{PortraitAlign, PreparedPortrait, prepare_portrait};
use super::components::{FacePortrait, TalkingFace};
use super::messages::{EdTalkError, EdTalkErrorKind};
use super::runtime::{FaceRuntime, Registration, WorkerRes, identity_of, modified_ids, report};
use super::settings::EdTalkSettings;
use crate::render::Portrait;

/// Marks a face whose portrait must be (re-)registered with the worker.
#[derive(Component, Default)]
pub(crate) struct NeedsRegistration;

/// A face got a portrait, or its portrait was replaced (a reloaded character's rig or
/// crop): register it again.
pub(crate) fn on_portrait_inserted(
    insert: On<Insert, FacePortrait>,
    mut faces: Query<&mut FaceRuntime>,
    mut commands: Commands,
) {
    if let Ok(mut rt) = faces.get_mut(insert.entity) {
        rt.registered = None;
        rt.reported_missing = false;
        rt.preparing = None;
    }
    commands.entity(insert.entity).insert(NeedsRegistration);
}

/// A face lost its portrait or was despawned: the worker forgets the identity.
pub(crate) fn on_portrait_removed(
    remove: On<Remove, FacePortrait>,
    worker: Option<ResMut<WorkerRes>>,
) {
    let Some(mut worker) = worker else {
        return;
    };
    let id = identity_of(remove.entity);
    worker.faces.remove(&id);
    for w in worker.worker.iter().chain(&worker.fallback) {
        let _ = w.remove_identity(id);
    }
}

/// A portrait image changed on disk (hot reload): its faces register again.
pub(crate) fn reregister_modified_images(
    mut image_events: MessageReader<AssetEvent<Image>>,
    faces: Query<(Entity, &FacePortrait)>,
    mut commands: Commands,
) {
    let modified = modified_ids(&mut image_events);
    if modified.is_empty() {
        return;
    }
    for (entity, portrait) in &faces {
        if modified.contains(&portrait.image.id()) {
            commands.entity(entity).insert(NeedsRegistration);
        }
    }
}

pub(crate) fn new_face_image(width: u32, height: u32) -> Image {
    Image::new_fill(
        Extent3d {
            width,
            height,
            depth_or_array_layers: 1,
        },
        TextureDimension::D2,
        &[0, 0, 0, 0],
        TextureFormat::Rgba8UnormSrgb,
        // Main and render world: the frame bytes are moved in each update; the GPU texture
        // is written in place (same descriptor), never re-created.
        RenderAssetUsages::default(),
    )
}

/// Converts a Bevy image to the renderers' portrait (RGBA8, optional crop).
fn portrait_from_image(image: &Image, crop: Option<[u32; 4]>) -> Result<Portrait, String> {
    let rgba = match image.texture_descriptor.format {
        TextureFormat::Rgba8UnormSrgb | TextureFormat::Rgba8Unorm => image.clone(),
        other => image
            .convert(TextureFormat::Rgba8UnormSrgb)
            .ok_or_else(|| format!("portrait texture format {other:?} cannot be converted"))?,
    };
    let (w, h) = (rgba.width(), rgba.height());
    let data = rgba.data.ok_or("portrait image has no CPU-side pixels")?;
    let portrait = Portrait::from_rgba(w, h, data).map_err(|e| e.to_string())?;
    match crop {
        None => Ok(portrait),
        Some([x, y, cw, ch]) => portrait
            .crop(x, y, cw, ch)
            .ok_or_else(|| format!("crop [{x}, {y}, {cw}, {ch}] is outside the {w}x{h} portrait")),
    }
}

/// What registering a portrait needs besides the faces.
#[derive(SystemParam)]
pub(crate) struct PortraitIo<'w> {
    images: ResMut<'w, Assets<Image>>,
    asset_server: Res<'w, AssetServer>,
    settings: Res<'w, EdTalkSettings>,
    worker: ResMut<'w, WorkerRes>,
    errors: MessageWriter<'w, EdTalkError>,
}

type PortraitFace = (
    Entity,
    &'static FacePortrait,
    &'static mut TalkingFace,
    &'static mut FaceRuntime,
    Option<&'static mut Sprite>,
);

/// Registers new or changed portraits with the worker and gives each face its texture.
/// Alignment (face detection) runs on the async compute pool; the still portrait stays up
/// meanwhile.
pub(crate) fn register_portraits(
    mut faces: Query<PortraitFace, With<NeedsRegistration>>,
    mut io: PortraitIo,
    mut commands: Commands,
) {
    let size = io
        .worker
        .worker
        .as_ref()
        .map_or(io.settings.face_resolution.clamp(32, 1024), |w| {
            w.resolution()
        });
    for (entity, portrait, mut face, mut rt, sprite) in &mut faces {
        if face.image == Handle::default() {
            face.image = io.images.add(new_face_image(size, size));
        }
        if let Some(mut sprite) = sprite
            && sprite.image != face.image
        {
            sprite.image = face.image.clone();
        }
        let id = portrait.image.id();
        // A preparation under way: wait for it.
        if let Some(task) = rt.preparing.as_mut() {
            let Some(prepared) = block_on(poll_once(task)) else {
                continue;
            };
            rt.preparing = None;
            finish_registration(
                entity,
                id,
                prepared,
                &mut face,
                &mut rt,
                &mut io,
                &mut commands,
            );
            continue;
        }
        let Some(image) = io.images.get(id) else {
            if let LoadState::Failed(e) = io.asset_server.load_state(id) {
                commands.entity(entity).remove::<NeedsRegistration>();
                if !rt.reported_missing {
                    rt.reported_missing = true;
                    rt.registration = Registration::Failed;
                    report(
                        &mut io.errors,
                        Some(entity),
                        EdTalkErrorKind::Portrait,
                        format!("portrait did not load: {e}"),
                    );
                }
            }
            continue;
        };
        let portrait_px = match portrait_from_image(image, portrait.crop) {
            Ok(p) => p,
            Err(e) => {
                commands.entity(entity).remove::<NeedsRegistration>();
                rt.registration = Registration::Failed;
                report(
                    &mut io.errors,
                    Some(entity),
                    EdTalkErrorKind::Portrait,
                    format!("bad portrait: {e}"),
                );
                continue;
            }
        };
        let (align, rig, paste_back) = (
            portrait.align.clone(),
            portrait.rig.clone(),
            portrait.paste_back,
        );
        if align == PortraitAlign::Off {
            let prepared = prepare_portrait(portrait_px, &align, rig, paste_back, size);
            finish_registration(
                entity,
                id,
                prepared,
                &mut face,
                &mut rt,
                &mut io,
                &mut commands,
            );
        } else {
            // Face detection takes tens to hundreds of milliseconds: never on this thread.
            rt.preparing = Some(AsyncComputeTaskPool::get().spawn(async move {
                prepare_portrait(portrait_px, &align, rig, paste_back, size)
            }));
        }
    }
}

/// Shows the still, sizes the texture, and sends the prepared portrait to the worker.
fn finish_registration(
    entity: Entity,
    image_id: AssetId<Image>,
    prepared: PreparedPortrait,
    face: &mut TalkingFace,
    rt: &mut FaceRuntime,
    io: &mut PortraitIo,
    commands: &mut Commands,
) {
    if let Some(note) = &prepared.note {
        report(
            &mut io.errors,
            Some(entity),
            EdTalkErrorKind::Portrait,
            note.clone(),
        );
    }
    // The texture takes the frames' size: the whole portrait when pasting back.
    let (w, h) = (prepared.still.width(), prepared.still.height());
    let resized = io
        .images
        .get(&face.image)
        .is_some_and(|img| img.width() != w || img.height() != h);
    if resized {
        let _ = io.images.insert(&face.image, new_face_image(w, h));
    }
    if let Some(mut img) = io.images.get_mut(&face.image) {
        img.data = Some(prepared.still.into_rgba());
    }
    let Some(w) = io.worker.worker.as_ref() else {
        commands.entity(entity).remove::<NeedsRegistration>();
        return;
    };
    let key = identity_of(entity);
    // The procedural fallback gets the face too (cheap), for lines the neural renderer
    // cannot render ahead in time; a full queue there only costs that fallback. (It
    // replaces an identity in order: frames asked for later use the new portrait.)
    if let Some(f) = io.worker.fallback.as_ref() {
        let _ = f
            .set_paste_back(key, prepared.paste.clone())
            .and_then(|()| f.set_identity(key, prepared.identity.clone(), prepared.rig.clone()));
    }
    let sent = w
        .set_paste_back(key, prepared.paste)
        .and_then(|()| w.set_identity(key, prepared.identity, prepared.rig));
    match sent {
        Ok(()) => {
            commands.entity(entity).remove::<NeedsRegistration>();
            rt.registered = Some(image_id);
            rt.registration = Registration::Pending;
            io.worker.faces.insert(key, entity);
        }
        // The worker's queue is full: the face is registered again next frame.
        Err(e) => report(
            &mut io.errors,
            Some(entity),
            EdTalkErrorKind::Worker,
            e.to_string(),
        ),
    }
}

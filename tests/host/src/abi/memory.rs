//! Bounds-checked access to guest linear memory, and returning data to the guest through its
//! allocator (`proxy_on_memory_allocate`, or the deprecated `malloc` in its absence: spec
//! section "Memory management").
//!
//! Guest pointers are untrusted: every access checks `ptr + len` against the current memory size
//! with overflow-safe arithmetic and fails with [`Status::BadArgument`] instead of trapping the
//! host or touching anything outside the guest's memory.

use wasmtime::{AsContext, AsContextMut, Memory};

use super::{Abi, Status};
use crate::state::HostState;

fn memory(store: &impl AsContext<Data = HostState>) -> Result<Memory, Abi> {
    store
        .as_context()
        .data()
        .vm
        .memory
        .ok_or(Abi::Status(Status::InternalFailure))
}

fn range(ptr: u32, len: u32, size: usize) -> Result<std::ops::Range<usize>, Abi> {
    let start = usize::try_from(ptr).map_err(|_| Status::BadArgument)?;
    let len = usize::try_from(len).map_err(|_| Status::BadArgument)?;
    let end = start.checked_add(len).ok_or(Status::BadArgument)?;
    if end > size {
        return Err(Abi::Status(Status::BadArgument));
    }
    Ok(start..end)
}

/// Copies `len` bytes at `ptr` out of guest memory.
pub(crate) fn read(
    store: &impl AsContext<Data = HostState>,
    ptr: u32,
    len: u32,
) -> Result<Vec<u8>, Abi> {
    let mem = memory(store)?;
    let data = mem.data(store);
    let r = range(ptr, len, data.len())?;
    Ok(data[r].to_vec())
}

/// Checks that `[ptr, ptr + len)` lies inside guest memory.
pub(crate) fn check(
    store: &impl AsContext<Data = HostState>,
    ptr: u32,
    len: u32,
) -> Result<(), Abi> {
    let mem = memory(store)?;
    range(ptr, len, mem.data_size(store)).map(|_| ())
}

/// Writes `bytes` at `ptr`.
pub(crate) fn write(
    store: &mut impl AsContextMut<Data = HostState>,
    ptr: u32,
    bytes: &[u8],
) -> Result<(), Abi> {
    let mem = memory(store)?;
    let len = u32::try_from(bytes.len()).map_err(|_| Status::BadArgument)?;
    let data = mem.data_mut(store);
    let r = range(ptr, len, data.len())?;
    data[r].copy_from_slice(bytes);
    Ok(())
}

/// Writes a little-endian `u32` at `ptr`.
pub(crate) fn write_u32(
    store: &mut impl AsContextMut<Data = HostState>,
    ptr: u32,
    value: u32,
) -> Result<(), Abi> {
    write(store, ptr, &value.to_le_bytes())
}

/// Writes a little-endian `u64` at `ptr`.
pub(crate) fn write_u64(
    store: &mut impl AsContextMut<Data = HostState>,
    ptr: u32,
    value: u64,
) -> Result<(), Abi> {
    write(store, ptr, &value.to_le_bytes())
}

/// Reads a little-endian `u32` at `ptr`.
pub(crate) fn read_u32(store: &impl AsContext<Data = HostState>, ptr: u32) -> Result<u32, Abi> {
    let b = read(store, ptr, 4)?;
    let mut w = [0u8; 4];
    w.copy_from_slice(&b);
    Ok(u32::from_le_bytes(w))
}

/// Copies `bytes` into a buffer allocated by the guest and stores its address and size at
/// `ret_data` / `ret_size` (the ABI's `return_*_data` / `return_*_size` out-parameters).
///
/// Both out-pointers are checked before the guest allocator runs, so a bad pointer does not
/// leak guest memory. Empty data is returned as a null pointer and size 0, which the Rust SDK
/// reads as "no data" for buffers and properties and as an empty string for header values.
///
/// # Errors
/// `BadArgument` for out-of-bounds pointers, `InternalFailure` when the allocator returns 0 or
/// an out-of-bounds block, [`Abi::Guest`] when the allocator traps.
pub(crate) fn return_bytes(
    store: &mut impl AsContextMut<Data = HostState>,
    bytes: &[u8],
    ret_data: u32,
    ret_size: u32,
) -> Result<(), Abi> {
    let Some(ptr) = allocate_returned(store, bytes.len(), ret_data, ret_size)? else {
        return Ok(());
    };
    write(store, ptr, bytes).map_err(|_| Status::InternalFailure)?;
    write_returned(store, ptr, bytes.len(), ret_data, ret_size)
}

/// [`return_bytes`] for bytes the host state holds (a body buffer): `len` bytes are allocated,
/// then `source` picks them out of the state and they are copied straight into the block, as a
/// gateway copies its buffer into guest memory, with no copy of their own on the way.
///
/// The allocator is guest code and may change the state through hostcalls; when `source` then
/// finds other than `len` bytes, the call fails with `InternalFailure`.
pub(crate) fn return_held<S>(
    store: &mut impl AsContextMut<Data = HostState>,
    len: usize,
    ret_data: u32,
    ret_size: u32,
    source: S,
) -> Result<(), Abi>
where
    S: FnOnce(&HostState) -> Result<&[u8], Abi>,
{
    let Some(ptr) = allocate_returned(store, len, ret_data, ret_size)? else {
        return Ok(());
    };
    let mem = memory(store)?;
    let (data, state) = mem.data_and_store_mut(&mut *store);
    let bytes = source(state).map_err(|_| Status::InternalFailure)?;
    if bytes.len() != len {
        return Err(Abi::Status(Status::InternalFailure));
    }
    let size = u32::try_from(len).map_err(|_| Status::InternalFailure)?;
    let r = range(ptr, size, data.len()).map_err(|_| Status::InternalFailure)?;
    data[r].copy_from_slice(bytes);
    write_returned(store, ptr, len, ret_data, ret_size)
}

/// Checks the out-pointers and allocates `len` bytes for returned data: `None` (after storing a
/// null pointer and size 0) when `len` is 0.
fn allocate_returned(
    store: &mut impl AsContextMut<Data = HostState>,
    len: usize,
    ret_data: u32,
    ret_size: u32,
) -> Result<Option<u32>, Abi> {
    check(store, ret_data, 4)?;
    check(store, ret_size, 4)?;
    if len == 0 {
        write_u32(store, ret_data, 0)?;
        write_u32(store, ret_size, 0)?;
        return Ok(None);
    }
    let size = u32::try_from(len).map_err(|_| Status::BadArgument)?;
    allocate(store, size).map(Some)
}

/// Stores the address and size of returned data in the out-parameters.
fn write_returned(
    store: &mut impl AsContextMut<Data = HostState>,
    ptr: u32,
    len: usize,
    ret_data: u32,
    ret_size: u32,
) -> Result<(), Abi> {
    let size = u32::try_from(len).map_err(|_| Status::BadArgument)?;
    write_u32(store, ret_data, ptr)?;
    write_u32(store, ret_size, size)
}

/// Asks the guest allocator for `size` bytes.
pub(crate) fn allocate(
    store: &mut impl AsContextMut<Data = HostState>,
    size: u32,
) -> Result<u32, Abi> {
    let alloc = store
        .as_context()
        .data()
        .vm
        .alloc
        .clone()
        .ok_or(Abi::Status(Status::InternalFailure))?;
    let ptr = alloc.call(&mut *store, size).map_err(Abi::Guest)?;
    if ptr == 0 {
        return Err(Abi::Status(Status::InternalFailure));
    }
    check(store, ptr, size).map_err(|_| Status::InternalFailure)?;
    Ok(ptr)
}

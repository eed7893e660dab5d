"""DXGI adapter enumeration through ctypes: the Windows probe behind LiveProbes.dxgi_adapters.

Windows only at run time; the structures and vtable calls are plain ctypes. The DXGI ctypes code
(IDXGIFactory1::EnumAdapters1 and IDXGIAdapter1::GetDesc1 through the COM vtable) runs in the tests against a fake
vtable, never against dxgi.dll.
"""

from __future__ import annotations

import ctypes
from typing import Any

from .hardware_probes import _unavailable


class _Guid(ctypes.Structure):
    _fields_ = [
        ("Data1", ctypes.c_uint32),
        ("Data2", ctypes.c_uint16),
        ("Data3", ctypes.c_uint16),
        ("Data4", ctypes.c_ubyte * 8),
    ]


class _Luid(ctypes.Structure):
    _fields_ = [("LowPart", ctypes.c_uint32), ("HighPart", ctypes.c_int32)]


class _AdapterDesc1(ctypes.Structure):
    # DXGI_ADAPTER_DESC1. WCHAR is spelled uint16 so the layout is Windows' on every platform the tests run on.
    _fields_ = [
        ("Description", ctypes.c_uint16 * 128),
        ("VendorId", ctypes.c_uint32),
        ("DeviceId", ctypes.c_uint32),
        ("SubSysId", ctypes.c_uint32),
        ("Revision", ctypes.c_uint32),
        ("DedicatedVideoMemory", ctypes.c_size_t),
        ("DedicatedSystemMemory", ctypes.c_size_t),
        ("SharedSystemMemory", ctypes.c_size_t),
        ("AdapterLuid", _Luid),
        ("Flags", ctypes.c_uint32),
    ]


_IID_IDXGI_FACTORY1 = _Guid(
    0x770AAE78, 0xF26F, 0x4DBA, (ctypes.c_ubyte * 8)(0xA8, 0x29, 0x25, 0x3C, 0x83, 0xD1, 0xB3, 0x87)
)
_DXGI_ERROR_NOT_FOUND = 0x887A0002
# vtable slots: IUnknown has 3 methods, IDXGIObject 4, IDXGIFactory 5, IDXGIAdapter 3
_SLOT_RELEASE = 2
_SLOT_ENUM_ADAPTERS1 = 12
_SLOT_GET_DESC1 = 10
_MAX_ADAPTERS = 64
# On x64 Windows COM methods use the one calling convention CFUNCTYPE also describes.
_COM_FUNCTYPE = getattr(ctypes, "WINFUNCTYPE", ctypes.CFUNCTYPE)


def _com_call(obj: ctypes.c_void_p, slot: int, restype: Any, argtypes: list[Any], *args: Any) -> Any:
    vtable = ctypes.cast(obj, ctypes.POINTER(ctypes.POINTER(ctypes.c_void_p))).contents
    method = _COM_FUNCTYPE(restype, ctypes.c_void_p, *argtypes)(vtable[slot])
    return method(obj, *args)


def _hresult_text(hresult: int) -> str:
    return f"0x{hresult & 0xFFFFFFFF:08X}"


def _dxgi_adapters_windows() -> dict[str, Any]:
    factory = ctypes.c_void_p()
    try:
        create = ctypes.WinDLL("dxgi").CreateDXGIFactory1  # type: ignore[attr-defined]
    except (OSError, AttributeError) as error:
        return _unavailable(f"dxgi.dll could not be loaded: {error}")
    create.restype = ctypes.c_long
    create.argtypes = [ctypes.POINTER(_Guid), ctypes.POINTER(ctypes.c_void_p)]
    hresult = create(ctypes.byref(_IID_IDXGI_FACTORY1), ctypes.byref(factory))
    if hresult < 0 or not factory.value:
        return _unavailable(f"CreateDXGIFactory1 failed with HRESULT {_hresult_text(hresult)}")
    try:
        return {"available": True, "adapters": enumerate_dxgi_adapters(factory)}
    finally:
        _com_call(factory, _SLOT_RELEASE, ctypes.c_ulong, [])


def enumerate_dxgi_adapters(factory: ctypes.c_void_p) -> list[dict[str, Any]]:
    """IDXGIFactory1::EnumAdapters1 until DXGI_ERROR_NOT_FOUND, with each adapter's GetDesc1."""
    adapters: list[dict[str, Any]] = []
    for index in range(_MAX_ADAPTERS):
        adapter = ctypes.c_void_p()
        argtypes = [ctypes.c_uint, ctypes.POINTER(ctypes.c_void_p)]
        hresult = _com_call(factory, _SLOT_ENUM_ADAPTERS1, ctypes.c_long, argtypes, index, ctypes.byref(adapter))
        if hresult & 0xFFFFFFFF == _DXGI_ERROR_NOT_FOUND:
            break
        if hresult < 0 or not adapter.value:
            raise OSError(f"IDXGIFactory1::EnumAdapters1({index}) failed with HRESULT {_hresult_text(hresult)}")
        try:
            desc = _AdapterDesc1()
            argtypes = [ctypes.POINTER(_AdapterDesc1)]
            if _com_call(adapter, _SLOT_GET_DESC1, ctypes.c_long, argtypes, ctypes.byref(desc)) >= 0:
                adapters.append(_adapter_answer(index, desc))
        finally:
            _com_call(adapter, _SLOT_RELEASE, ctypes.c_ulong, [])
    return adapters


def _adapter_answer(index: int, desc: _AdapterDesc1) -> dict[str, Any]:
    description = bytes(desc.Description).decode("utf-16-le", "replace").split("\0", 1)[0]
    return {
        "index": index,
        "description": description,
        "vendor_id": desc.VendorId,
        "device_id": desc.DeviceId,
        "subsys_id": desc.SubSysId,
        "revision": desc.Revision,
        "dedicated_video_memory": desc.DedicatedVideoMemory,
        "dedicated_system_memory": desc.DedicatedSystemMemory,
        "shared_system_memory": desc.SharedSystemMemory,
        "luid": _luid_text(desc.AdapterLuid.HighPart, desc.AdapterLuid.LowPart),
        "flags": desc.Flags,
    }


def _luid_text(high: int, low: int) -> str:
    return f"0x{((high & 0xFFFFFFFF) << 32) | (low & 0xFFFFFFFF):016x}"

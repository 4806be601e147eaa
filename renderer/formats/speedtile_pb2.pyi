# generated, do not edit: scripts/generate-formats
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SpeedTile(_message.Message):
    __slots__ = ("subtiles",)
    class SubTile(_message.Message):
        __slots__ = ("level", "index", "startSegmentIndex", "totalSegments", "subtileSegments", "rangeStart", "rangeEnd", "unitSize", "entrySize", "description", "speeds", "speedVariances", "prevalences", "nextSegmentIndices", "nextSegmentCounts", "nextSegmentIds", "nextSegmentDelays", "nextSegmentDelayVariances", "nextSegmentQueueLengths", "nextSegmentQueueLengthVariances", "referenceSpeeds20", "referenceSpeeds40", "referenceSpeeds60", "referenceSpeeds80")
        LEVEL_FIELD_NUMBER: _ClassVar[int]
        INDEX_FIELD_NUMBER: _ClassVar[int]
        STARTSEGMENTINDEX_FIELD_NUMBER: _ClassVar[int]
        TOTALSEGMENTS_FIELD_NUMBER: _ClassVar[int]
        SUBTILESEGMENTS_FIELD_NUMBER: _ClassVar[int]
        RANGESTART_FIELD_NUMBER: _ClassVar[int]
        RANGEEND_FIELD_NUMBER: _ClassVar[int]
        UNITSIZE_FIELD_NUMBER: _ClassVar[int]
        ENTRYSIZE_FIELD_NUMBER: _ClassVar[int]
        DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
        SPEEDS_FIELD_NUMBER: _ClassVar[int]
        SPEEDVARIANCES_FIELD_NUMBER: _ClassVar[int]
        PREVALENCES_FIELD_NUMBER: _ClassVar[int]
        NEXTSEGMENTINDICES_FIELD_NUMBER: _ClassVar[int]
        NEXTSEGMENTCOUNTS_FIELD_NUMBER: _ClassVar[int]
        NEXTSEGMENTIDS_FIELD_NUMBER: _ClassVar[int]
        NEXTSEGMENTDELAYS_FIELD_NUMBER: _ClassVar[int]
        NEXTSEGMENTDELAYVARIANCES_FIELD_NUMBER: _ClassVar[int]
        NEXTSEGMENTQUEUELENGTHS_FIELD_NUMBER: _ClassVar[int]
        NEXTSEGMENTQUEUELENGTHVARIANCES_FIELD_NUMBER: _ClassVar[int]
        REFERENCESPEEDS20_FIELD_NUMBER: _ClassVar[int]
        REFERENCESPEEDS40_FIELD_NUMBER: _ClassVar[int]
        REFERENCESPEEDS60_FIELD_NUMBER: _ClassVar[int]
        REFERENCESPEEDS80_FIELD_NUMBER: _ClassVar[int]
        level: int
        index: int
        startSegmentIndex: int
        totalSegments: int
        subtileSegments: int
        rangeStart: int
        rangeEnd: int
        unitSize: int
        entrySize: int
        description: str
        speeds: _containers.RepeatedScalarFieldContainer[int]
        speedVariances: _containers.RepeatedScalarFieldContainer[int]
        prevalences: _containers.RepeatedScalarFieldContainer[int]
        nextSegmentIndices: _containers.RepeatedScalarFieldContainer[int]
        nextSegmentCounts: _containers.RepeatedScalarFieldContainer[int]
        nextSegmentIds: _containers.RepeatedScalarFieldContainer[int]
        nextSegmentDelays: _containers.RepeatedScalarFieldContainer[int]
        nextSegmentDelayVariances: _containers.RepeatedScalarFieldContainer[int]
        nextSegmentQueueLengths: _containers.RepeatedScalarFieldContainer[int]
        nextSegmentQueueLengthVariances: _containers.RepeatedScalarFieldContainer[int]
        referenceSpeeds20: _containers.RepeatedScalarFieldContainer[int]
        referenceSpeeds40: _containers.RepeatedScalarFieldContainer[int]
        referenceSpeeds60: _containers.RepeatedScalarFieldContainer[int]
        referenceSpeeds80: _containers.RepeatedScalarFieldContainer[int]
        def __init__(self, level: _Optional[int] = ..., index: _Optional[int] = ..., startSegmentIndex: _Optional[int] = ..., totalSegments: _Optional[int] = ..., subtileSegments: _Optional[int] = ..., rangeStart: _Optional[int] = ..., rangeEnd: _Optional[int] = ..., unitSize: _Optional[int] = ..., entrySize: _Optional[int] = ..., description: _Optional[str] = ..., speeds: _Optional[_Iterable[int]] = ..., speedVariances: _Optional[_Iterable[int]] = ..., prevalences: _Optional[_Iterable[int]] = ..., nextSegmentIndices: _Optional[_Iterable[int]] = ..., nextSegmentCounts: _Optional[_Iterable[int]] = ..., nextSegmentIds: _Optional[_Iterable[int]] = ..., nextSegmentDelays: _Optional[_Iterable[int]] = ..., nextSegmentDelayVariances: _Optional[_Iterable[int]] = ..., nextSegmentQueueLengths: _Optional[_Iterable[int]] = ..., nextSegmentQueueLengthVariances: _Optional[_Iterable[int]] = ..., referenceSpeeds20: _Optional[_Iterable[int]] = ..., referenceSpeeds40: _Optional[_Iterable[int]] = ..., referenceSpeeds60: _Optional[_Iterable[int]] = ..., referenceSpeeds80: _Optional[_Iterable[int]] = ...) -> None: ...
    SUBTILES_FIELD_NUMBER: _ClassVar[int]
    subtiles: _containers.RepeatedCompositeFieldContainer[SpeedTile.SubTile]
    def __init__(self, subtiles: _Optional[_Iterable[_Union[SpeedTile.SubTile, _Mapping]]] = ...) -> None: ...

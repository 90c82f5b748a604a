package tcflower

// Netlink and rtnetlink values used by the codec (linux/rtnetlink.h).
const (
	RTMNewTFilter = 44
	RTMDelTFilter = 45
	RTMGetTFilter = 46

	tcaKind    = 1
	tcaOptions = 2
	tcaChain   = 11

	nlaFNested   = 1 << 15
	nlaTypeMask  = 0x3fff
	tcmsgLen     = 20
	ethPAll      = 0x0003
	ethP8021Q    = 0x8100
	ethP8021AD   = 0x88a8
	ethPIPv4     = 0x0800
	ethPIPv6     = 0x86dd
	tcActMaxPrio = 32
)

// ParentIngress is TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS): the ingress
// hook of a clsact or ingress qdisc, as `tc filter add dev X ingress` uses.
const ParentIngress = 0xfffffff2

// Filter flags (TCA_CLS_FLAGS_*).
const (
	FlagSkipHW  = 1 << 0
	FlagSkipSW  = 1 << 1
	FlagInHW    = 1 << 2
	FlagNotInHW = 1 << 3
)

// TCA_FLOWER_* attributes (linux/pkt_cls.h).
const (
	flowerAct             = 3
	flowerKeyEthDst       = 4
	flowerKeyEthDstMask   = 5
	flowerKeyEthSrc       = 6
	flowerKeyEthSrcMask   = 7
	flowerKeyEthType      = 8
	flowerKeyIPProto      = 9
	flowerKeyIPv4Src      = 10
	flowerKeyIPv4SrcMask  = 11
	flowerKeyIPv4Dst      = 12
	flowerKeyIPv4DstMask  = 13
	flowerKeyIPv6Src      = 14
	flowerKeyIPv6SrcMask  = 15
	flowerKeyIPv6Dst      = 16
	flowerKeyIPv6DstMask  = 17
	flowerKeyTCPSrc       = 18
	flowerKeyTCPDst       = 19
	flowerKeyUDPSrc       = 20
	flowerKeyUDPDst       = 21
	flowerFlags           = 22
	flowerKeyVLANID       = 23
	flowerKeyVLANPrio     = 24
	flowerKeyVLANEthType  = 25
	flowerKeyEncKeyID     = 26
	flowerKeyEncIPv4Src   = 27
	flowerKeyEncIPv4SrcM  = 28
	flowerKeyEncIPv4Dst   = 29
	flowerKeyEncIPv4DstM  = 30
	flowerKeyEncIPv6Src   = 31
	flowerKeyEncIPv6SrcM  = 32
	flowerKeyEncIPv6Dst   = 33
	flowerKeyEncIPv6DstM  = 34
	flowerKeyTCPSrcMask   = 35
	flowerKeyTCPDstMask   = 36
	flowerKeyUDPSrcMask   = 37
	flowerKeyUDPDstMask   = 38
	flowerKeySCTPSrcMask  = 39
	flowerKeySCTPDstMask  = 40
	flowerKeySCTPSrc      = 41
	flowerKeySCTPDst      = 42
	flowerKeyEncUDPDst    = 45
	flowerKeyEncUDPDstM   = 46
	flowerKeyFlags        = 47
	flowerKeyFlagsMask    = 48
	flowerKeyICMPv4Code   = 49
	flowerKeyICMPv4CodeM  = 50
	flowerKeyICMPv4Type   = 51
	flowerKeyICMPv4TypeM  = 52
	flowerKeyICMPv6Code   = 53
	flowerKeyICMPv6CodeM  = 54
	flowerKeyICMPv6Type   = 55
	flowerKeyICMPv6TypeM  = 56
	flowerKeyTCPFlags     = 71
	flowerKeyTCPFlagsMask = 72
	flowerKeyIPTOS        = 73
	flowerKeyIPTOSMask    = 74
	flowerKeyIPTTL        = 75
	flowerKeyIPTTLMask    = 76
	flowerKeyCVLANID      = 77
	flowerKeyCVLANPrio    = 78
	flowerKeyCVLANEthType = 79
	flowerInHWCount       = 86
	flowerKeyCTState      = 91
	flowerKeyCTStateMask  = 92
	flowerKeyCTZone       = 93
	flowerKeyCTZoneMask   = 94
	flowerKeyCTMark       = 95
	flowerKeyCTMarkMask   = 96
	flowerMax             = 100
)

// TCA_ACT_* attributes of one action.
const (
	actKind    = 1
	actOptions = 2
	actIndex   = 3
	actStats   = 4
	actCookie  = 6
	actMax     = 10
)

// TCA_STATS_* inside TCA_ACT_STATS (linux/gen_stats.h).
const (
	statsBasic   = 1
	statsBasicHW = 7
	statsPkt64   = 8
)

// Action control values (TC_ACT_*).
const (
	actOK        = 0
	actShot      = 2
	actPipe      = 3
	actStolen    = 4
	actGotoChain = 2 << 28
	actExtMask   = 0xf << 28
)

// Per-kind attributes: PARMS and TM of each action we emit.
const (
	gactTM    = 1
	gactParms = 2

	mirredTM            = 1
	mirredParms         = 2
	mirredEgressRedir   = 1
	mirredEgressMirror  = 2
	mirredIngressRedir  = 3
	mirredIngressMirror = 4

	vlanTM        = 1
	vlanParms     = 2
	vlanPushID    = 3
	vlanPushProto = 4
	vlanPushPrio  = 6
	vlanActPop    = 1
	vlanActPush   = 2

	tunTM         = 1
	tunParms      = 2
	tunIPv4Src    = 3
	tunIPv4Dst    = 4
	tunIPv6Src    = 5
	tunIPv6Dst    = 6
	tunKeyID      = 7
	tunDstPort    = 9
	tunNoCsum     = 10
	tunTOS        = 12
	tunTTL        = 13
	tunActSet     = 1
	tunActRelease = 2

	ctParms      = 1
	ctTM         = 2
	ctAction     = 3
	ctZone       = 4
	ctMark       = 5
	ctMarkMask   = 6
	ctNATIPv4Min = 9
	ctNATIPv4Max = 10
	ctNATIPv6Min = 11
	ctNATIPv6Max = 12
	ctNATPortMin = 13
	ctNATPortMax = 14
	ctActCommit  = 1 << 0
	ctActClear   = 1 << 2
	ctActNAT     = 1 << 3
	ctActNATSrc  = 1 << 4
	ctActNATDst  = 1 << 5

	peditTM         = 1
	peditParms      = 2
	peditParmsEx    = 4
	peditKeysEx     = 5
	peditKeyEx      = 6
	peditKeyExHType = 1
	peditKeyExCmd   = 2
	peditHTypeEth   = 1
	peditHTypeIP4   = 2
	peditHTypeIP6   = 3
	peditHTypeTCP   = 4
	peditHTypeUDP   = 5
	peditCmdSet     = 0
	peditCmdAdd     = 1

	csumParms   = 1
	csumTM      = 2
	csumIPv4Hdr = 1
	csumTCP     = 8
	csumUDP     = 16

	policeTBF        = 1
	policeRate       = 2
	policeResult     = 5
	policeTM         = 6
	policeRate64     = 8
	policePktRate64  = 10
	policePktBurst64 = 11
)

// Sizes of the fixed structs.
const (
	tcGenLen     = 20
	tcMirredLen  = 28
	tcPoliceLen  = 56
	peditSelLen  = 24
	peditKeyLen  = 24
	tcfTLen      = 32
	gnetBasicLen = 16
)

// A mistake at the end of a 200-step chain: one error, and the error line comes before any wall of types.
#include <weft/dsl.hpp>
#define WEFT_STEP(n) struct s##n { static constexpr std::string_view name = #n; int operator()(int) const; };
WEFT_STEP(0)
WEFT_STEP(1)
WEFT_STEP(2)
WEFT_STEP(3)
WEFT_STEP(4)
WEFT_STEP(5)
WEFT_STEP(6)
WEFT_STEP(7)
WEFT_STEP(8)
WEFT_STEP(9)
WEFT_STEP(10)
WEFT_STEP(11)
WEFT_STEP(12)
WEFT_STEP(13)
WEFT_STEP(14)
WEFT_STEP(15)
WEFT_STEP(16)
WEFT_STEP(17)
WEFT_STEP(18)
WEFT_STEP(19)
WEFT_STEP(20)
WEFT_STEP(21)
WEFT_STEP(22)
WEFT_STEP(23)
WEFT_STEP(24)
WEFT_STEP(25)
WEFT_STEP(26)
WEFT_STEP(27)
WEFT_STEP(28)
WEFT_STEP(29)
WEFT_STEP(30)
WEFT_STEP(31)
WEFT_STEP(32)
WEFT_STEP(33)
WEFT_STEP(34)
WEFT_STEP(35)
WEFT_STEP(36)
WEFT_STEP(37)
WEFT_STEP(38)
WEFT_STEP(39)
WEFT_STEP(40)
WEFT_STEP(41)
WEFT_STEP(42)
WEFT_STEP(43)
WEFT_STEP(44)
WEFT_STEP(45)
WEFT_STEP(46)
WEFT_STEP(47)
WEFT_STEP(48)
WEFT_STEP(49)
WEFT_STEP(50)
WEFT_STEP(51)
WEFT_STEP(52)
WEFT_STEP(53)
WEFT_STEP(54)
WEFT_STEP(55)
WEFT_STEP(56)
WEFT_STEP(57)
WEFT_STEP(58)
WEFT_STEP(59)
WEFT_STEP(60)
WEFT_STEP(61)
WEFT_STEP(62)
WEFT_STEP(63)
WEFT_STEP(64)
WEFT_STEP(65)
WEFT_STEP(66)
WEFT_STEP(67)
WEFT_STEP(68)
WEFT_STEP(69)
WEFT_STEP(70)
WEFT_STEP(71)
WEFT_STEP(72)
WEFT_STEP(73)
WEFT_STEP(74)
WEFT_STEP(75)
WEFT_STEP(76)
WEFT_STEP(77)
WEFT_STEP(78)
WEFT_STEP(79)
WEFT_STEP(80)
WEFT_STEP(81)
WEFT_STEP(82)
WEFT_STEP(83)
WEFT_STEP(84)
WEFT_STEP(85)
WEFT_STEP(86)
WEFT_STEP(87)
WEFT_STEP(88)
WEFT_STEP(89)
WEFT_STEP(90)
WEFT_STEP(91)
WEFT_STEP(92)
WEFT_STEP(93)
WEFT_STEP(94)
WEFT_STEP(95)
WEFT_STEP(96)
WEFT_STEP(97)
WEFT_STEP(98)
WEFT_STEP(99)
WEFT_STEP(100)
WEFT_STEP(101)
WEFT_STEP(102)
WEFT_STEP(103)
WEFT_STEP(104)
WEFT_STEP(105)
WEFT_STEP(106)
WEFT_STEP(107)
WEFT_STEP(108)
WEFT_STEP(109)
WEFT_STEP(110)
WEFT_STEP(111)
WEFT_STEP(112)
WEFT_STEP(113)
WEFT_STEP(114)
WEFT_STEP(115)
WEFT_STEP(116)
WEFT_STEP(117)
WEFT_STEP(118)
WEFT_STEP(119)
WEFT_STEP(120)
WEFT_STEP(121)
WEFT_STEP(122)
WEFT_STEP(123)
WEFT_STEP(124)
WEFT_STEP(125)
WEFT_STEP(126)
WEFT_STEP(127)
WEFT_STEP(128)
WEFT_STEP(129)
WEFT_STEP(130)
WEFT_STEP(131)
WEFT_STEP(132)
WEFT_STEP(133)
WEFT_STEP(134)
WEFT_STEP(135)
WEFT_STEP(136)
WEFT_STEP(137)
WEFT_STEP(138)
WEFT_STEP(139)
WEFT_STEP(140)
WEFT_STEP(141)
WEFT_STEP(142)
WEFT_STEP(143)
WEFT_STEP(144)
WEFT_STEP(145)
WEFT_STEP(146)
WEFT_STEP(147)
WEFT_STEP(148)
WEFT_STEP(149)
WEFT_STEP(150)
WEFT_STEP(151)
WEFT_STEP(152)
WEFT_STEP(153)
WEFT_STEP(154)
WEFT_STEP(155)
WEFT_STEP(156)
WEFT_STEP(157)
WEFT_STEP(158)
WEFT_STEP(159)
WEFT_STEP(160)
WEFT_STEP(161)
WEFT_STEP(162)
WEFT_STEP(163)
WEFT_STEP(164)
WEFT_STEP(165)
WEFT_STEP(166)
WEFT_STEP(167)
WEFT_STEP(168)
WEFT_STEP(169)
WEFT_STEP(170)
WEFT_STEP(171)
WEFT_STEP(172)
WEFT_STEP(173)
WEFT_STEP(174)
WEFT_STEP(175)
WEFT_STEP(176)
WEFT_STEP(177)
WEFT_STEP(178)
WEFT_STEP(179)
WEFT_STEP(180)
WEFT_STEP(181)
WEFT_STEP(182)
WEFT_STEP(183)
WEFT_STEP(184)
WEFT_STEP(185)
WEFT_STEP(186)
WEFT_STEP(187)
WEFT_STEP(188)
WEFT_STEP(189)
WEFT_STEP(190)
WEFT_STEP(191)
WEFT_STEP(192)
WEFT_STEP(193)
WEFT_STEP(194)
WEFT_STEP(195)
WEFT_STEP(196)
WEFT_STEP(197)
WEFT_STEP(198)
struct last { static constexpr std::string_view name = "last"; int operator()(std::string) const; };
constexpr auto wf = weft::workflow<"long">(
    weft::step<s0> >>
    weft::step<s1> >>
    weft::step<s2> >>
    weft::step<s3> >>
    weft::step<s4> >>
    weft::step<s5> >>
    weft::step<s6> >>
    weft::step<s7> >>
    weft::step<s8> >>
    weft::step<s9> >>
    weft::step<s10> >>
    weft::step<s11> >>
    weft::step<s12> >>
    weft::step<s13> >>
    weft::step<s14> >>
    weft::step<s15> >>
    weft::step<s16> >>
    weft::step<s17> >>
    weft::step<s18> >>
    weft::step<s19> >>
    weft::step<s20> >>
    weft::step<s21> >>
    weft::step<s22> >>
    weft::step<s23> >>
    weft::step<s24> >>
    weft::step<s25> >>
    weft::step<s26> >>
    weft::step<s27> >>
    weft::step<s28> >>
    weft::step<s29> >>
    weft::step<s30> >>
    weft::step<s31> >>
    weft::step<s32> >>
    weft::step<s33> >>
    weft::step<s34> >>
    weft::step<s35> >>
    weft::step<s36> >>
    weft::step<s37> >>
    weft::step<s38> >>
    weft::step<s39> >>
    weft::step<s40> >>
    weft::step<s41> >>
    weft::step<s42> >>
    weft::step<s43> >>
    weft::step<s44> >>
    weft::step<s45> >>
    weft::step<s46> >>
    weft::step<s47> >>
    weft::step<s48> >>
    weft::step<s49> >>
    weft::step<s50> >>
    weft::step<s51> >>
    weft::step<s52> >>
    weft::step<s53> >>
    weft::step<s54> >>
    weft::step<s55> >>
    weft::step<s56> >>
    weft::step<s57> >>
    weft::step<s58> >>
    weft::step<s59> >>
    weft::step<s60> >>
    weft::step<s61> >>
    weft::step<s62> >>
    weft::step<s63> >>
    weft::step<s64> >>
    weft::step<s65> >>
    weft::step<s66> >>
    weft::step<s67> >>
    weft::step<s68> >>
    weft::step<s69> >>
    weft::step<s70> >>
    weft::step<s71> >>
    weft::step<s72> >>
    weft::step<s73> >>
    weft::step<s74> >>
    weft::step<s75> >>
    weft::step<s76> >>
    weft::step<s77> >>
    weft::step<s78> >>
    weft::step<s79> >>
    weft::step<s80> >>
    weft::step<s81> >>
    weft::step<s82> >>
    weft::step<s83> >>
    weft::step<s84> >>
    weft::step<s85> >>
    weft::step<s86> >>
    weft::step<s87> >>
    weft::step<s88> >>
    weft::step<s89> >>
    weft::step<s90> >>
    weft::step<s91> >>
    weft::step<s92> >>
    weft::step<s93> >>
    weft::step<s94> >>
    weft::step<s95> >>
    weft::step<s96> >>
    weft::step<s97> >>
    weft::step<s98> >>
    weft::step<s99> >>
    weft::step<s100> >>
    weft::step<s101> >>
    weft::step<s102> >>
    weft::step<s103> >>
    weft::step<s104> >>
    weft::step<s105> >>
    weft::step<s106> >>
    weft::step<s107> >>
    weft::step<s108> >>
    weft::step<s109> >>
    weft::step<s110> >>
    weft::step<s111> >>
    weft::step<s112> >>
    weft::step<s113> >>
    weft::step<s114> >>
    weft::step<s115> >>
    weft::step<s116> >>
    weft::step<s117> >>
    weft::step<s118> >>
    weft::step<s119> >>
    weft::step<s120> >>
    weft::step<s121> >>
    weft::step<s122> >>
    weft::step<s123> >>
    weft::step<s124> >>
    weft::step<s125> >>
    weft::step<s126> >>
    weft::step<s127> >>
    weft::step<s128> >>
    weft::step<s129> >>
    weft::step<s130> >>
    weft::step<s131> >>
    weft::step<s132> >>
    weft::step<s133> >>
    weft::step<s134> >>
    weft::step<s135> >>
    weft::step<s136> >>
    weft::step<s137> >>
    weft::step<s138> >>
    weft::step<s139> >>
    weft::step<s140> >>
    weft::step<s141> >>
    weft::step<s142> >>
    weft::step<s143> >>
    weft::step<s144> >>
    weft::step<s145> >>
    weft::step<s146> >>
    weft::step<s147> >>
    weft::step<s148> >>
    weft::step<s149> >>
    weft::step<s150> >>
    weft::step<s151> >>
    weft::step<s152> >>
    weft::step<s153> >>
    weft::step<s154> >>
    weft::step<s155> >>
    weft::step<s156> >>
    weft::step<s157> >>
    weft::step<s158> >>
    weft::step<s159> >>
    weft::step<s160> >>
    weft::step<s161> >>
    weft::step<s162> >>
    weft::step<s163> >>
    weft::step<s164> >>
    weft::step<s165> >>
    weft::step<s166> >>
    weft::step<s167> >>
    weft::step<s168> >>
    weft::step<s169> >>
    weft::step<s170> >>
    weft::step<s171> >>
    weft::step<s172> >>
    weft::step<s173> >>
    weft::step<s174> >>
    weft::step<s175> >>
    weft::step<s176> >>
    weft::step<s177> >>
    weft::step<s178> >>
    weft::step<s179> >>
    weft::step<s180> >>
    weft::step<s181> >>
    weft::step<s182> >>
    weft::step<s183> >>
    weft::step<s184> >>
    weft::step<s185> >>
    weft::step<s186> >>
    weft::step<s187> >>
    weft::step<s188> >>
    weft::step<s189> >>
    weft::step<s190> >>
    weft::step<s191> >>
    weft::step<s192> >>
    weft::step<s193> >>
    weft::step<s194> >>
    weft::step<s195> >>
    weft::step<s196> >>
    weft::step<s197> >>
    weft::step<s198> >> weft::step<last>);
int main() {}

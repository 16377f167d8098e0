package numbering

// countryCodes is the E.164 country calling codes in use and the region
// each serves (ISO 3166-1 alpha-2; "-" for the non-geographic codes, whose
// name says what they are). The codes are prefix-free, so a number is read
// by its longest matching prefix; the only longer rows are the +7 6 and
// +7 7 numbers of Kazakhstan within +7.
//
// Compiled on 2026-12-02 from the ITU-T "List of ITU-T Recommendation E.164
// assigned country codes" (Complement to E.164, edition of 2016, with the
// amendments of later ITU Operational Bulletins). It was written without
// access to the ITU site: check it against the current list before relying
// on a region's entry, and override or extend it in [fraud] (see
// docs/fraud.md). Codes shared by several regions name the main one; +1
// (NANP) and +7 are split further by nanpAreas and the +7 rows below.
const countryCodes = `
1 US United States (NANP)
20 EG Egypt
211 SS South Sudan
212 MA Morocco
213 DZ Algeria
216 TN Tunisia
218 LY Libya
220 GM Gambia
221 SN Senegal
222 MR Mauritania
223 ML Mali
224 GN Guinea
225 CI Cote d'Ivoire
226 BF Burkina Faso
227 NE Niger
228 TG Togo
229 BJ Benin
230 MU Mauritius
231 LR Liberia
232 SL Sierra Leone
233 GH Ghana
234 NG Nigeria
235 TD Chad
236 CF Central African Republic
237 CM Cameroon
238 CV Cabo Verde
239 ST Sao Tome and Principe
240 GQ Equatorial Guinea
241 GA Gabon
242 CG Congo
243 CD Democratic Republic of the Congo
244 AO Angola
245 GW Guinea-Bissau
246 IO Diego Garcia
247 AC Ascension
248 SC Seychelles
249 SD Sudan
250 RW Rwanda
251 ET Ethiopia
252 SO Somalia
253 DJ Djibouti
254 KE Kenya
255 TZ Tanzania
256 UG Uganda
257 BI Burundi
258 MZ Mozambique
260 ZM Zambia
261 MG Madagascar
262 RE Reunion and Mayotte
263 ZW Zimbabwe
264 NA Namibia
265 MW Malawi
266 LS Lesotho
267 BW Botswana
268 SZ Eswatini
269 KM Comoros
27 ZA South Africa
290 SH Saint Helena
291 ER Eritrea
297 AW Aruba
298 FO Faroe Islands
299 GL Greenland
30 GR Greece
31 NL Netherlands
32 BE Belgium
33 FR France
34 ES Spain
350 GI Gibraltar
351 PT Portugal
352 LU Luxembourg
353 IE Ireland
354 IS Iceland
355 AL Albania
356 MT Malta
357 CY Cyprus
358 FI Finland
359 BG Bulgaria
36 HU Hungary
370 LT Lithuania
371 LV Latvia
372 EE Estonia
373 MD Moldova
374 AM Armenia
375 BY Belarus
376 AD Andorra
377 MC Monaco
378 SM San Marino
379 VA Vatican City
380 UA Ukraine
381 RS Serbia
382 ME Montenegro
383 XK Kosovo
385 HR Croatia
386 SI Slovenia
387 BA Bosnia and Herzegovina
389 MK North Macedonia
39 IT Italy
40 RO Romania
41 CH Switzerland
420 CZ Czechia
421 SK Slovakia
423 LI Liechtenstein
43 AT Austria
44 GB United Kingdom
45 DK Denmark
46 SE Sweden
47 NO Norway
48 PL Poland
49 DE Germany
500 FK Falkland Islands
501 BZ Belize
502 GT Guatemala
503 SV El Salvador
504 HN Honduras
505 NI Nicaragua
506 CR Costa Rica
507 PA Panama
508 PM Saint Pierre and Miquelon
509 HT Haiti
51 PE Peru
52 MX Mexico
53 CU Cuba
54 AR Argentina
55 BR Brazil
56 CL Chile
57 CO Colombia
58 VE Venezuela
590 GP Guadeloupe
591 BO Bolivia
592 GY Guyana
593 EC Ecuador
594 GF French Guiana
595 PY Paraguay
596 MQ Martinique
597 SR Suriname
598 UY Uruguay
599 CW Curacao and the Caribbean Netherlands
60 MY Malaysia
61 AU Australia
62 ID Indonesia
63 PH Philippines
64 NZ New Zealand
65 SG Singapore
66 TH Thailand
670 TL Timor-Leste
672 NF Norfolk Island and Australian Antarctic bases
673 BN Brunei
674 NR Nauru
675 PG Papua New Guinea
676 TO Tonga
677 SB Solomon Islands
678 VU Vanuatu
679 FJ Fiji
680 PW Palau
681 WF Wallis and Futuna
682 CK Cook Islands
683 NU Niue
685 WS Samoa
686 KI Kiribati
687 NC New Caledonia
688 TV Tuvalu
689 PF French Polynesia
690 TK Tokelau
691 FM Micronesia
692 MH Marshall Islands
7 RU Russia
800 - International Freephone Service
808 - International Shared Cost Service
81 JP Japan
82 KR South Korea
84 VN Viet Nam
850 KP North Korea
852 HK Hong Kong
853 MO Macao
855 KH Cambodia
856 LA Laos
86 CN China
870 - Inmarsat (satellite)
878 - Universal Personal Telecommunication
880 BD Bangladesh
881 - Global Mobile Satellite System
882 - International Networks
883 - International Networks
886 TW Taiwan
888 - Telecommunications for Disaster Relief (OCHA)
90 TR Turkey
91 IN India
92 PK Pakistan
93 AF Afghanistan
94 LK Sri Lanka
95 MM Myanmar
960 MV Maldives
961 LB Lebanon
962 JO Jordan
963 SY Syria
964 IQ Iraq
965 KW Kuwait
966 SA Saudi Arabia
967 YE Yemen
968 OM Oman
970 PS Palestine
971 AE United Arab Emirates
972 IL Israel
973 BH Bahrain
974 QA Qatar
975 BT Bhutan
976 MN Mongolia
977 NP Nepal
979 - International Premium Rate Service
98 IR Iran
991 - International Public Correspondence Telecommunication Service trial
992 TJ Tajikistan
993 TM Turkmenistan
994 AZ Azerbaijan
995 GE Georgia
996 KG Kyrgyzstan
998 UZ Uzbekistan
76 KZ Kazakhstan
77 KZ Kazakhstan
`

// nanpAreas are the NANP (+1) area codes outside the United States, by
// region: Canada's and the Caribbean's. Other +1 numbers are read as the
// United States. Same provenance and date as countryCodes (NANPA's lists
// of area codes by location); new area codes are opened every year.
const nanpAreas = `
CA 204 226 236 249 250 257 263 289 306 343 354 365 367 368 382 403 416 418 428 431 437 438 450 460 468 474 506 514 519 548 579 581 584 587 604 613 639 647 672 683 705 709 742 753 778 780 782 807 819 825 867 873 879 902 905 942
BS 242
BB 246
AI 264
AG 268
VG 284
VI 340
KY 345
BM 441
GD 473
TC 649
JM 658 876
MS 664
MP 670
GU 671
AS 684
SX 721
LC 758
DM 767
VC 784
PR 787 939
DO 809 829 849
TT 868
KN 869
`

// riskRanges are ranges where calls cost the caller far more than a call
// should, or which are known destinations of international revenue share
// fraud: what a compromised account is made to dial. Each line: category,
// E.164 prefix, and what it is.
//
// Same date and caveat as countryCodes: the non-geographic codes are the
// ITU's; the national premium-rate ranges are the national numbering
// plans' premium-rate blocks (Ofcom, BNetzA, ARCEP, AGCOM, CNMC, RTR, ACM,
// BIPT, OFCOM.ch, ACMA, NANPA), as published before 2026, written here
// without online access. Users add their own in [fraud] risk_prefixes.
const riskRanges = `
satellite 870 Inmarsat
satellite 881 Global Mobile Satellite System (Iridium, Globalstar, Thuraya, ...)
international_network 882 International Networks (shared codes, often revenue share)
international_network 883 International Networks (shared codes, often revenue share)
premium 979 International Premium Rate Service
premium 1900 NANP premium rate (900)
premium 1976 NANP premium rate (976)
premium 449 United Kingdom premium rate (09)
personal 4470 United Kingdom personal numbers (070)
premium 49900 Germany premium rate (0900)
premium 49137 Germany televoting (0137)
premium 3389 France premium rate (089)
premium 39899 Italy premium rate (899)
premium 34803 Spain premium rate (803)
premium 34806 Spain premium rate (806)
premium 34807 Spain premium rate (807)
premium 43900 Austria premium rate (0900)
premium 43930 Austria premium rate (0930)
premium 31900 Netherlands premium rate (0900)
premium 31906 Netherlands premium rate (0906)
premium 31909 Netherlands premium rate (0909)
premium 3290 Belgium premium rate (090x)
premium 41900 Switzerland premium rate (0900)
premium 41901 Switzerland premium rate (0901)
premium 41906 Switzerland premium rate (0906)
premium 6119 Australia premium rate (19xx)
`

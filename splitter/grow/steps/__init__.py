"""The grow's steps, one module each (describe / precheck / apply / verify), run by the split's Runner."""
